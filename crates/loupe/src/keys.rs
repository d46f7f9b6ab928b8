//! `loupe keys`: create and list API keys in `keys.json` of the data
//! directory. Works with the server stopped or running: the file is
//! replaced atomically and a running server re-reads it when it changes.
//! Only the SHA-256 of a secret key is stored; `create` prints the secret
//! once.

use std::path::PathBuf;

use anyhow::Context;
use loupe_api::auth::{KEYS_FILE, KeysFile, generate_key};
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
        #[command(flatten)]
        location: ConfigArgs,
        /// Print the key as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the keys of keys.json (public keys and projects).
    List {
        #[command(flatten)]
        location: ConfigArgs,
    },
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
            location,
            json,
        } => {
            let project = ProjectId::new(project)?;
            let path = keys_file(&location)?;
            let mut file = KeysFile::load(&path)?;
            let (record, secret) = generate_key(&project);
            file.version = 1;
            file.keys.push(record.clone());
            file.save(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "project": project.as_str(),
                        "public_key": record.public_key,
                        "secret_key": secret,
                        "secret_key_hash": record.secret_key_hash,
                        "keys_file": path,
                    })
                );
            } else {
                println!("project:    {project}");
                println!("public key: {}", record.public_key);
                println!("secret key: {secret}");
                println!(
                    "stored in:  {} (secret stored as its SHA-256 only)",
                    path.display()
                );
                println!();
                println!("Langfuse clients and Dify: host = Loupe's HTTP address, these two keys.");
                println!("OTLP senders: Authorization: Bearer <secret key>.");
            }
            Ok(())
        }
        KeysCommand::List { location } => {
            let path = keys_file(&location)?;
            for key in KeysFile::load(&path)?.keys {
                println!(
                    "{}\t{}\t{}",
                    key.project,
                    key.public_key,
                    key.created_at.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
