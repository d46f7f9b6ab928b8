//! `loupe keys`: create, list and revoke API keys in `keys.json` of the
//! data directory. Works with the server stopped or running: the file is
//! replaced atomically and a running server re-reads it when it changes.
//! Only the SHA-256 of a secret key is stored; `create` prints the secret
//! once.

use std::path::PathBuf;

use anyhow::Context;
use loupe_api::auth::{KEYS_FILE, KeysFile, Scope, generate_key};
use loupe_model::ProjectId;

use crate::open::ConfigArgs;

/// `loupe keys …`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create a key pair for a project and print it (the secret only once).
    Create {
        /// The project the key acts on (A-Z a-z 0-9 . _ -).
        #[arg(long)]
        project: String,
        /// What the key may do: ingest (send spans only: the key for
        /// Dify's tracing settings and OTLP senders), read (queries,
        /// console, metrics), or admin (everything, including alert rules
        /// and silences).
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        #[command(flatten)]
        location: ConfigArgs,
        /// Print the key as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the keys of keys.json (project, public key, scope, created).
    List {
        #[command(flatten)]
        location: ConfigArgs,
    },
    /// Delete a key from keys.json by its public key; a running server
    /// refuses it (and ends its console sessions) within a second. Deleting
    /// the last key does not reopen Loupe: with no key left every request
    /// is refused and the next start fails until a key is created.
    Revoke {
        /// The public key (pk-lf-…) to delete.
        public_key: String,
        #[command(flatten)]
        location: ConfigArgs,
    },
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    text.parse()
}

/// `keys.json` in the data directory that `--data-dir`, else the config's
/// `store.data_dir`, else `./loupe-data` (the `serve` default) names.
fn keys_file(location: &ConfigArgs) -> anyhow::Result<PathBuf> {
    Ok(location.resolve()?.store.data_dir.join(KEYS_FILE))
}

/// Runs a `keys` subcommand.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Create {
            project,
            scope,
            location,
            json,
        } => {
            let project = ProjectId::new(project)?;
            let path = keys_file(&location)?;
            let mut file = KeysFile::load(&path)?;
            let (record, secret) = generate_key(&project, scope);
            file.version = 1;
            file.keys.push(record.clone());
            file.save(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "project": project.as_str(),
                        "scope": scope,
                        "public_key": record.public_key,
                        "secret_key": secret,
                        "secret_key_hash": record.secret_key_hash,
                        "keys_file": path,
                    })
                );
            } else {
                println!("project:    {project}");
                println!("scope:      {scope}");
                println!("public key: {}", record.public_key);
                println!("secret key: {secret}");
                println!(
                    "stored in:  {} (secret stored as its SHA-256 only)",
                    path.display()
                );
                println!();
                match scope {
                    Scope::Ingest => {
                        println!(
                            "Langfuse clients and Dify: host = Loupe's HTTP address, these two keys."
                        );
                        println!("OTLP senders: Authorization: Bearer <secret key>.");
                        println!(
                            "This key can only send data: it cannot read prompts or change alerting."
                        );
                    }
                    Scope::Read => println!(
                        "This key reads (queries, console, metrics); it cannot send data or change alerting."
                    ),
                    Scope::Admin => println!(
                        "This key can do everything, alerting included; give Dify an --scope ingest key instead."
                    ),
                }
            }
            Ok(())
        }
        KeysCommand::Revoke {
            public_key,
            location,
        } => {
            let path = keys_file(&location)?;
            let mut file = KeysFile::load(&path)?;
            let before = file.keys.len();
            file.keys.retain(|k| k.public_key != public_key);
            if file.keys.len() == before {
                anyhow::bail!(
                    "no key {public_key:?} in {} (`loupe keys list` shows them; keys in \
                     [[auth.keys]] of the config file are removed there)",
                    path.display()
                );
            }
            file.save(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("revoked {public_key} ({} keys left)", file.keys.len());
            if file.keys.is_empty() {
                println!(
                    "No key is left: the server refuses every request until you create one \
                     (`loupe keys create --project P --scope admin`)."
                );
            }
            Ok(())
        }
        KeysCommand::List { location } => {
            let path = keys_file(&location)?;
            for key in KeysFile::load(&path)?.keys {
                println!(
                    "{}\t{}\t{}\t{}",
                    key.project,
                    key.public_key,
                    key.scope.map_or("admin (no scope set)", Scope::as_str),
                    key.created_at.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
