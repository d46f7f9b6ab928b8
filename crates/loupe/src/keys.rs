//! `loupe keys`: create and list API keys in `keys.json` of the data
//! directory. Works with the server stopped or running: the file is
//! replaced atomically and a running server re-reads it when it changes.
//! Only the SHA-256 of a secret key is stored; `create` prints the secret
//! once.

use std::path::PathBuf;

use anyhow::Context;
use loupe_api::auth::{KEYS_FILE, KeysFile, generate_key};
use loupe_model::ProjectId;

use crate::config::Config;

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
        location: Location,
        /// Print the key as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the keys of keys.json (public keys and projects).
    List {
        #[command(flatten)]
        location: Location,
    },
}

/// Where keys.json is: `--data-dir`, else the config's `store.data_dir`,
/// else `./loupe-data` (the `serve` default).
#[derive(Debug, clap::Args)]
struct Location {
    /// Data directory of the server.
    #[arg(long, env = "LOUPE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Config file whose store.data_dir to use.
    #[arg(long, env = "LOUPE_CONFIG")]
    config: Option<PathBuf>,
}

impl Location {
    fn keys_file(&self) -> anyhow::Result<PathBuf> {
        let dir = match (&self.data_dir, &self.config) {
            (Some(dir), _) => dir.clone(),
            (None, Some(path)) => Config::load(path)?.store.data_dir,
            (None, None) => Config::default().store.data_dir,
        };
        Ok(dir.join(KEYS_FILE))
    }
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
            let path = location.keys_file()?;
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
            let path = location.keys_file()?;
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
