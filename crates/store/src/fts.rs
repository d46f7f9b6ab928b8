//! Full-text side indexes: one tantivy index per Parquet part, used to skip
//! parts that cannot match a full-text filter (`Filter::Text`).
//!
//! Layout: `fts/<part id, 16 digits>/` holds the tantivy files of the part's
//! index (one segment). It is built in `fts/<id>.tmp/` and renamed into
//! place, so a directory without the suffix is always complete; leftovers
//! and indexes of parts no longer live are removed by the next build pass.
//!
//! Content: one document per row; the lowercased `input`, `output` and
//! `error_message` as values of one field, tokenised into character
//! trigrams. A full-text word matches a row when it is a case-insensitive
//! substring of one of those fields, so a row matching every word contains
//! every trigram of every word: the conjunction of those trigram terms
//! finds a superset of the matching rows. A part whose index finds no
//! document is skipped; every other row still goes through the exact
//! substring predicate, so answers equal a scan. Words shorter than three
//! characters have no trigram and do not narrow anything.
//!
//! Builds run off the ingest hot path, in the maintenance pass
//! ([`Store::index_text`]). Reading copies an index's files into memory (a
//! `RamDirectory`) and never writes, so read-only stores use indexes too.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_model::column;
use tantivy::collector::Count;
use tantivy::directory::{Directory, RamDirectory};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TantivyDocument, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{NgramTokenizer, TextAnalyzer, TokenizerManager};
use tantivy::{Index, IndexBuilder, ReloadPolicy, Searcher, Term};

use crate::parts::{Part, read_rows};
use crate::wal::{io_err, sync_dir};
use crate::{Error, Store};

/// Directory of the indexes under the data directory.
pub(crate) const DIR: &str = "fts";
const FIELD: &str = "text";
const TOKENIZER: &str = "loupe_trigram";
/// Indexing memory budget per build (tantivy's minimum is 15 MB).
const BUDGET: usize = 32 << 20;

fn schema() -> (Schema, Field) {
    let mut builder = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(TOKENIZER)
        .set_index_option(IndexRecordOption::Basic);
    let field =
        builder.add_text_field(FIELD, TextOptions::default().set_indexing_options(indexing));
    (builder.build(), field)
}

/// The directory of part `id`'s index.
pub(crate) fn dir_of(data_dir: &Path, id: u64) -> PathBuf {
    data_dir.join(DIR).join(format!("{id:016}"))
}

/// The distinct character trigrams of a lowercased word.
fn trigrams(word: &str) -> BTreeSet<String> {
    let chars: Vec<char> = word.to_lowercase().chars().collect();
    chars.windows(3).map(|w| w.iter().collect()).collect()
}

/// A part's index, loaded in memory.
pub(crate) struct TextIndex {
    searcher: Searcher,
    field: Field,
}

impl TextIndex {
    /// Rows that may contain every word (a superset of the true matches).
    pub fn candidates(&self, words: &[String]) -> Result<usize, Error> {
        let terms: BTreeSet<String> = words.iter().flat_map(|w| trigrams(w)).collect();
        if terms.is_empty() {
            return Ok(usize::try_from(self.searcher.num_docs()).unwrap_or(usize::MAX));
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q = TermQuery::new(
                    Term::from_field_text(self.field, t),
                    IndexRecordOption::Basic,
                );
                (Occur::Must, Box::new(q) as Box<dyn Query>)
            })
            .collect();
        Ok(self.searcher.search(&BooleanQuery::new(clauses), &Count)?)
    }

    /// Loads the index in `dir`, if there is one. Reads only.
    fn load(dir: &Path) -> Result<Option<TextIndex>, Error> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(dir, e)),
        };
        let ram = RamDirectory::create();
        for entry in entries {
            let path = entry.map_err(io_err(dir))?.path();
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            let Some(name) = path.file_name() else {
                continue;
            };
            ram.atomic_write(Path::new(name), &bytes)
                .map_err(io_err(&path))?;
        }
        let index = Index::open(ram)?;
        let field = index.schema().get_field(FIELD)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Some(TextIndex {
            searcher: reader.searcher(),
            field,
        }))
    }
}

/// Builds part `part`'s index into `fts/<id>/` (through a temp directory).
fn build(data_dir: &Path, part: &Part) -> Result<(), Error> {
    let rows = read_rows(
        &part.path,
        None,
        &[
            column::SPAN_ID,
            column::INPUT,
            column::OUTPUT,
            column::ERROR_MESSAGE,
        ],
        // Every row, hidden or not: document ids are row positions.
        &crate::deletes::DeletionVector::default(),
    )?;
    let (schema, field) = schema();
    let tokenizers = TokenizerManager::default();
    tokenizers.register(
        TOKENIZER,
        TextAnalyzer::builder(NgramTokenizer::new(3, 3, false)?).build(),
    );
    let ram = RamDirectory::create();
    let mut writer = IndexBuilder::new()
        .schema(schema)
        .tokenizers(tokenizers)
        .single_segment_index_writer(ram.clone(), BUDGET)?;
    for row in &rows {
        let mut doc = TantivyDocument::default();
        let s = &row.span;
        for text in [&s.input, &s.output, &s.error_message]
            .into_iter()
            .flatten()
        {
            doc.add_text(field, text.to_lowercase());
        }
        writer.add_document(doc)?;
    }
    let index = writer.finalize()?;
    let mut files: HashSet<PathBuf> = index.directory().list_managed_files();
    files.insert(PathBuf::from("meta.json"));
    files.insert(PathBuf::from(".managed.json"));
    let target = dir_of(data_dir, part.meta.id);
    let tmp = target.with_extension("tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    for name in files {
        // Files tantivy garbage-collected after the build are gone; skip them.
        let Ok(bytes) = ram.atomic_read(&name) else {
            continue;
        };
        let path = tmp.join(&name);
        let file = fs::File::create(&path).map_err(io_err(&path))?;
        std::io::Write::write_all(&mut &file, &bytes).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
    }
    sync_dir(&tmp)?;
    fs::rename(&tmp, &target).map_err(io_err(&target))?;
    sync_dir(&data_dir.join(DIR))
}

impl Store {
    /// Builds the full-text index of every live part that has none and
    /// removes indexes of parts no longer live (and unfinished builds).
    /// Returns the number built. Run by the maintenance pass; blocking.
    pub fn index_text(&self) -> Result<usize, Error> {
        self.check_writable()?;
        let data_dir = self.inner.config.data_dir.clone();
        let root = data_dir.join(DIR);
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        let (parts, _) = self.parts_snapshot();
        let live: HashSet<String> = parts.iter().map(|p| format!("{:016}", p.meta.id)).collect();
        for entry in fs::read_dir(&root).map_err(io_err(&root))? {
            let path = entry.map_err(io_err(&root))?.path();
            let keep = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| live.contains(n));
            if !keep {
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
            }
        }
        let mut built = 0;
        for part in parts.iter() {
            if !dir_of(&data_dir, part.meta.id).exists() {
                build(&data_dir, part)?;
                built += 1;
            }
        }
        self.inner
            .text_indexes
            .lock()
            .retain(|id, _| live.contains(&format!("{id:016}")));
        if built > 0 {
            tracing::debug!(built, "built full-text indexes");
        }
        Ok(built)
    }

    /// The loaded index of a part, if it has one (cached).
    pub(crate) fn text_index(&self, part: &Part) -> Option<Arc<TextIndex>> {
        if let Some(ix) = self.inner.text_indexes.lock().get(&part.meta.id) {
            return Some(ix.clone());
        }
        let dir = dir_of(&self.inner.config.data_dir, part.meta.id);
        match TextIndex::load(&dir) {
            Ok(Some(ix)) => {
                let ix = Arc::new(ix);
                self.inner
                    .text_indexes
                    .lock()
                    .insert(part.meta.id, ix.clone());
                Some(ix)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(part = part.meta.id, error = %e, "text index unreadable; scanning the part");
                None
            }
        }
    }

    /// Whether `part` may hold a row containing every word: false only when
    /// its index proves it holds none (no index: true).
    pub(crate) fn part_may_contain_text(&self, part: &Part, words: &[String]) -> bool {
        let Some(ix) = self.text_index(part) else {
            return true;
        };
        match ix.candidates(words) {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(part = part.meta.id, error = %e, "text index search failed; scanning the part");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests;
