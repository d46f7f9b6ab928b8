//! `loupe backup DEST` and `loupe restore BACKUP`: a consistent copy of a
//! data directory, taken while `loupe serve` runs (`loupe_store::backup`),
//! and its checked restore into a new data directory.

use std::path::PathBuf;

use anyhow::Context;

use crate::open::ConfigArgs;

/// Flags of `loupe backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the backup: a directory that must not exist yet.
    dest: PathBuf,
    /// The data directory to back up (`--data-dir`, or the config's).
    #[command(flatten)]
    config: ConfigArgs,
}

/// Flags of `loupe restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A backup written by `loupe backup`.
    backup: PathBuf,
    /// The data directory to create from it (new or empty; `--data-dir`, or
    /// the config's).
    #[command(flatten)]
    config: ConfigArgs,
}

fn bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec})")
    {
        bar.set_style(style);
    }
    bar
}

/// Runs `loupe backup`.
pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let config = args.config.resolve()?;
    let source = config.store.data_dir;
    let bar = bar();
    bar.set_message(format!("backing up {}", source.display()));
    let index = loupe_store::backup::backup(&source, &args.dest, &mut |bytes| {
        bar.set_position(bytes);
    })
    .with_context(|| format!("cannot back up {}", source.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "backed up {} files ({} bytes, flushed up to WAL seq {}) from {} to {}",
        index.files.len(),
        index.total_bytes(),
        index.flushed_seq,
        source.display(),
        args.dest.display()
    );
    Ok(())
}

/// Runs `loupe restore`.
pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let config = args.config.resolve()?;
    let target = config.store.data_dir;
    let index = loupe_store::backup::restore(&args.backup, &target)
        .with_context(|| format!("cannot restore {}", args.backup.display()))?;
    eprintln!(
        "restored {} files ({} bytes) into {}; `loupe serve --data-dir {}` replays the WAL tail \
         on start",
        index.files.len(),
        index.total_bytes(),
        target.display(),
        target.display()
    );
    Ok(())
}
