//! A part's file as Parquet reads it: by position.
//!
//! Parquet's `ChunkReader` for `std::fs::File` duplicates the descriptor,
//! seeks, reads and closes it for every range it is asked for, and asks
//! the file's length with another system call each time. Reading one run
//! asks for one page per column and place (a few hundred small ranges), so
//! those calls were a sixth of the time of a run read. [`PartFile`] shares
//! one descriptor and reads each range with one positioned read (`pread`).

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parquet::file::reader::{ChunkReader, Length};

use crate::Error;

/// An open part file, cheap to clone (one shared descriptor).
#[derive(Debug, Clone)]
pub(crate) struct PartFile {
    file: Arc<File>,
    len: u64,
}

impl PartFile {
    /// Opens `path` for reading.
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(Self {
            file: Arc::new(file),
            len,
        })
    }
}

impl Length for PartFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for PartFile {
    type T = BufReader<At>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        // Buffered: page headers are decoded from it a few bytes at a time.
        Ok(BufReader::new(At {
            file: self.file.clone(),
            at: start,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        // A range past the end is the file's fault (or a stale length):
        // an error, never an allocation of a size read from the file.
        let end = start.checked_add(length as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "range {start}+{length} past the end of a {}-byte part",
                self.len
            )));
        }
        let mut buf = vec![0; length];
        self.file.read_exact_at(&mut buf, start)?;
        Ok(buf.into())
    }
}

/// A reader from a position of a [`PartFile`] onwards.
#[derive(Debug)]
pub(crate) struct At {
    file: Arc<File>,
    at: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_reads_are_the_files_bytes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &body).expect("write");
        let file = PartFile::open(&path).expect("open");
        assert_eq!(file.len(), 10_000);
        assert_eq!(&file.get_bytes(17, 300).expect("range")[..], &body[17..317]);
        assert_eq!(file.get_bytes(10_000, 0).expect("empty").len(), 0);
        let mut rest = Vec::new();
        file.get_read(9_000)
            .expect("read")
            .read_to_end(&mut rest)
            .expect("to end");
        assert_eq!(rest, &body[9_000..]);
        // Past the end, and a length that would overflow: errors.
        assert!(file.get_bytes(9_990, 11).is_err());
        assert!(file.get_bytes(u64::MAX - 1, 10).is_err());
    }
}
