//! Full-text side indexes: per block of rows of a Parquet part, a bloom
//! filter of the character trigrams and words its text holds, used to skip parts and
//! the blocks of a part that cannot match a full-text filter
//! (`Filter::Text`).
//!
//! A full-text phrase matches a row when it is a case-insensitive substring
//! of the row's `input`, `output` or `error_message`, so a block holding a
//! matching row holds every trigram of the phrase, and every word the
//! phrase holds whole (separated on both sides: "1234" in "order 1234?"):
//! a block whose filter lacks one cannot match and is not read. Filters
//! hold words as well as trigrams because a block's trigrams are the union
//! of many rows': "order 1234?" shares all of its trigrams with blocks
//! holding "order 2341?" and "order 1123?", but not the word "1234". Every
//! row read still goes through the exact substring predicate, so answers
//! equal a scan. A phrase shorter than three characters narrows nothing.
//!
//! Why blocks of filters and not a posting list per row: the index only
//! has to say which rows are worth reading, and the reader reads pages, not
//! rows. One filter per [`BLOCK`] rows at 1 % false positives costs about
//! 10 bits per distinct trigram and word of the block (a few KB), where the former
//! per-row trigram documents (tantivy) were as large as the data itself.
//!
//! Layout: `fts/<part id, 16 digits>.tri`, written once by the maintenance
//! pass ([`Store::index_text`]) through a temp file and rename, read-only
//! afterwards (read-only stores use them too). The format is ours and fixed
//! (see [`Index::encode`]): a stored filter must answer the same after any
//! dependency upgrade, so the hashing is written here, not borrowed.

use std::collections::HashSet;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_model::column;

use crate::parts::{Part, read_rows};
use crate::wal::io_err;
use crate::{Error, Store};

/// Sets of hashes being built into a filter: their items are hashes
/// already, so a fast hasher suffices (SipHash was ~13 % of the CPU of a
/// backfill through the sync, beside the background text indexing).
type Hashes = HashSet<u64, foldhash::fast::RandomState>;

/// Directory of the indexes under the data directory.
pub(crate) const DIR: &str = "fts";
/// Rows per filter: four of the parts' 256-row pages.
pub(crate) const BLOCK: usize = 1_024;
const MAGIC: &[u8; 8] = b"LOUPETRI";
const FORMAT: u8 = 1;
/// Filter bits per distinct trigram, and probes: about 1 % false positives.
const BITS_PER_ITEM: usize = 10;
const PROBES: u32 = 7;
/// Largest filter read back (a damaged length must not allocate without
/// bound): far above what a block of text can need.
const MAX_FILTER_WORDS: usize = 1 << 24;

/// The file of part `id`'s index.
pub(crate) fn path_of(data_dir: &Path, id: u64) -> PathBuf {
    data_dir.join(DIR).join(format!("{id:016}.tri"))
}

/// Stable 64-bit hash of a trigram (FNV-1a then a murmur finaliser):
/// defined here so stored filters never depend on a library's hasher.
fn hash(bytes: &[u8]) -> u64 {
    finish(fnv(0xcbf2_9ce4_8422_2325, bytes))
}

/// FNV-1a over `bytes`, from state `h`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The mixing step that ends [`hash`].
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hashes of the distinct character trigrams and words (maximal runs of
/// letters and digits) of `text`, lowercased.
fn text_hashes(text: &str, out: &mut Hashes) {
    let lower = text.to_lowercase();
    trigrams_of(&lower, out);
    for (start, end) in words_of(&lower) {
        out.insert(word_hash(&lower[start..end]));
    }
}

/// What a phrase requires of a block: its trigrams, and its inner words
/// (those with a separator on both sides inside the phrase, so whole words
/// of any text containing it: in "order 1234?" the word "1234", never
/// "order", which could end "reorder").
fn phrase_hashes(phrase: &str, out: &mut Hashes) {
    let lower = phrase.to_lowercase();
    trigrams_of(&lower, out);
    for (start, end) in words_of(&lower) {
        if start > 0 && end < lower.len() {
            out.insert(word_hash(&lower[start..end]));
        }
    }
}

fn trigrams_of(lower: &str, out: &mut Hashes) {
    let bounds: Vec<usize> = lower
        .char_indices()
        .map(|(i, _)| i)
        .chain([lower.len()])
        .collect();
    for w in bounds.windows(4) {
        out.insert(hash(&lower.as_bytes()[w[0]..w[3]]));
    }
}

/// Byte ranges of the maximal runs of alphanumeric characters.
fn words_of(lower: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in lower.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, lower.len()));
    }
    out
}

/// A word's hash, apart from every trigram's: the leading 0xFF byte never
/// occurs in UTF-8 text.
fn word_hash(word: &str) -> u64 {
    // `hash` of 0xFF followed by the word, without building that buffer.
    finish(fnv(fnv(0xcbf2_9ce4_8422_2325, &[0xFF]), word.as_bytes()))
}

/// A classic bloom filter over 64-bit words with double hashing.
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    words: Vec<u64>,
}

impl Filter {
    fn with_items(items: &Hashes) -> Self {
        let bits = (items.len() * BITS_PER_ITEM).max(64);
        let mut f = Self {
            words: vec![0; bits.div_ceil(64)],
        };
        for &h in items {
            for bit in f.probes(h) {
                f.words[bit / 64] |= 1u64 << (bit % 64);
            }
        }
        f
    }

    fn probes(&self, h: u64) -> impl Iterator<Item = usize> + use<> {
        let bits = (self.words.len() * 64) as u64;
        let (a, b) = (h, h.rotate_left(32) | 1);
        (0..u64::from(PROBES)).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % bits) as usize)
    }

    fn contains(&self, h: u64) -> bool {
        self.probes(h)
            .all(|bit| self.words[bit / 64] & (1u64 << (bit % 64)) != 0)
    }
}

/// A part's index: one filter per block of [`BLOCK`] rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Index {
    rows: u64,
    blocks: Vec<Filter>,
}

impl Index {
    /// The index of rows given in file order, each as the texts it holds
    /// (spans: input, output, error message; logs: the body). Any table
    /// whose rows are searched by phrase builds its index here.
    pub(crate) fn of_rows<'a, R, T>(rows: R) -> Self
    where
        R: IntoIterator<Item = T>,
        T: IntoIterator<Item = &'a str>,
    {
        let mut blocks = Vec::new();
        let mut hashes = Hashes::default();
        let mut count: u64 = 0;
        for texts in rows {
            for text in texts {
                text_hashes(text, &mut hashes);
            }
            count += 1;
            if count.is_multiple_of(BLOCK as u64) {
                blocks.push(Filter::with_items(&hashes));
                hashes.clear();
            }
        }
        if !count.is_multiple_of(BLOCK as u64) {
            blocks.push(Filter::with_items(&hashes));
        }
        Self {
            rows: count,
            blocks,
        }
    }

    /// Rows the index covers.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows (in blocks) that may contain every word, as ascending ranges;
    /// all of them when no word has a trigram.
    pub fn candidates(&self, words: &[String]) -> Vec<Range<usize>> {
        let mut hashes = Hashes::default();
        for w in words {
            phrase_hashes(w, &mut hashes);
        }
        let rows = usize::try_from(self.rows).unwrap_or(usize::MAX);
        let mut out: Vec<Range<usize>> = Vec::new();
        for (i, f) in self.blocks.iter().enumerate() {
            if !hashes.iter().all(|&h| f.contains(h)) {
                continue;
            }
            let range = i * BLOCK..((i + 1) * BLOCK).min(rows);
            match out.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => out.push(range),
            }
        }
        out
    }

    /// `MAGIC | format u8 | rows u64 | blocks u32 | per block: words u32,
    /// words × u64 | crc32 of all before`, little-endian.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        for f in &self.blocks {
            out.extend_from_slice(&(f.words.len() as u32).to_le_bytes());
            for w in &f.words {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let body_len = bytes
            .len()
            .checked_sub(4)
            .ok_or("shorter than its checksum")?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err("checksum mismatch".into());
        }
        let mut r = body;
        let mut take = |n: usize| -> Result<&[u8], String> {
            if r.len() < n {
                return Err("truncated".into());
            }
            let (head, tail) = r.split_at(n);
            r = tail;
            Ok(head)
        };
        if take(8)? != MAGIC {
            return Err("not a Loupe text index".into());
        }
        let format = take(1)?[0];
        if format != FORMAT {
            return Err(format!("format {format}, this Loupe reads {FORMAT}"));
        }
        let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize;
        let rows = u64::from_le_bytes(take(8)?.try_into().unwrap_or_default());
        let count = u32_of(take(4)?);
        if count as u64 != rows.div_ceil(BLOCK as u64) {
            return Err(format!("{count} blocks for {rows} rows"));
        }
        let mut blocks = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let n = u32_of(take(4)?);
            if n == 0 || n > MAX_FILTER_WORDS {
                return Err(format!("a filter of {n} words"));
            }
            let words = take(n * 8)?
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect();
            blocks.push(Filter { words });
        }
        Ok(Self { rows, blocks })
    }

    pub(crate) fn load(path: &Path) -> Result<Option<Self>, Error> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        Self::decode(&bytes)
            .map(Some)
            .map_err(|reason| Error::Corrupt {
                path: path.to_owned(),
                offset: 0,
                reason,
            })
    }
}

/// Builds part `part`'s index.
fn build(part: &Part) -> Result<Index, Error> {
    let rows = read_rows(
        &part.local()?,
        None,
        &[
            column::SPAN_ID,
            column::INPUT,
            column::OUTPUT,
            column::ERROR_MESSAGE,
        ],
        // Every row, hidden or not: blocks are of row positions.
        &crate::deletes::DeletionVector::default(),
    )?;
    Ok(Index::of_rows(rows.iter().map(|row| {
        let s = &row.span;
        [&s.input, &s.output, &s.error_message]
            .into_iter()
            .flatten()
            .map(String::as_str)
    })))
}

impl Store {
    /// Builds the full-text index of every live part that has none and
    /// removes indexes of parts no longer live (and those of an older
    /// format: directories of the former per-row index, which the next
    /// builds replace). Returns the number built. Run by the maintenance
    /// pass; blocking.
    pub fn index_text(&self) -> Result<usize, Error> {
        self.check_writable()?;
        let data_dir = self.inner.config.data_dir.clone();
        let root = data_dir.join(DIR);
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        let (parts, _) = self.parts_snapshot();
        let live: HashSet<PathBuf> = parts
            .iter()
            .map(|p| path_of(&data_dir, p.meta.id))
            .collect();
        for entry in fs::read_dir(&root).map_err(io_err(&root))? {
            let entry = entry.map_err(io_err(&root))?;
            let path = entry.path();
            if live.contains(&path) {
                continue;
            }
            if entry.file_type().map_err(io_err(&path))?.is_dir() {
                tracing::info!(path = %path.display(), "removing a text index of the former format; it is rebuilt");
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
            } else {
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        let mut built = 0;
        for part in parts.iter() {
            if self.stopping() {
                break;
            }
            let path = path_of(&data_dir, part.meta.id);
            if !path.exists() {
                let index = build(part)?;
                loupe_fsutil::write_atomic(&path, &index.encode()).map_err(io_err(&path))?;
                built += 1;
            }
        }
        self.inner
            .text_indexes
            .lock()
            .retain(|id, _| live.contains(&path_of(&data_dir, *id)));
        if built > 0 {
            tracing::debug!(built, "built full-text indexes");
        }
        Ok(built)
    }

    /// The loaded index of a part, if it has one (cached).
    fn text_index(&self, part: &Part) -> Option<Arc<Index>> {
        if let Some(ix) = self.inner.text_indexes.lock().get(&part.meta.id) {
            return Some(ix.clone());
        }
        let path = path_of(&self.inner.config.data_dir, part.meta.id);
        match Index::load(&path) {
            Ok(Some(ix)) if ix.rows == part.meta.rows => {
                let ix = Arc::new(ix);
                self.inner
                    .text_indexes
                    .lock()
                    .insert(part.meta.id, ix.clone());
                Some(ix)
            }
            Ok(Some(ix)) => {
                tracing::warn!(
                    part = part.meta.id,
                    index_rows = ix.rows,
                    part_rows = part.meta.rows,
                    "text index does not match its part; scanning the part"
                );
                None
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(part = part.meta.id, error = %e, "text index unreadable; scanning the part");
                None
            }
        }
    }

    /// The rows of `part` that may hold a row containing every word, as
    /// ascending ranges: empty when its index proves none can, `None` when
    /// it has no index (every row may).
    pub(crate) fn text_candidates(
        &self,
        part: &Part,
        words: &[String],
    ) -> Option<Vec<Range<usize>>> {
        Some(self.text_index(part)?.candidates(words))
    }
}

#[cfg(test)]
mod tests;
