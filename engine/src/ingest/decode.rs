//! Streaming decoders with bounded memory: lines are read chunk by chunk and
//! a line longer than the cap is measured and skipped, never buffered.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One physical line (or, for CSV, one record that may span lines).
#[derive(Debug, PartialEq)]
pub enum Line {
    Text(Vec<u8>),
    /// Longer than the cap; only its length is known.
    TooLong(usize),
}

pub struct LineReader<R> {
    inner: R,
    cap: usize,
    offset: u64,
    number: u64,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// `offset` is where `inner` starts in the file (e.g. after a byte order mark).
    pub fn new(inner: R, cap: usize, offset: u64) -> Self {
        LineReader {
            inner,
            cap,
            offset,
            number: 0,
        }
    }

    /// The next line as (1-based number, byte offset of its first byte, content
    /// without `\n` or `\r\n`), or `None` at the end.
    pub async fn next_line(&mut self) -> io::Result<Option<(u64, u64, Line)>> {
        let start = self.offset;
        let mut buf = Vec::new();
        let mut len = 0usize;
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (take, newline) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            len += take;
            if !too_long {
                if buf.len() + take > self.cap {
                    too_long = true;
                    buf = Vec::new();
                } else {
                    buf.extend_from_slice(&chunk[..take]);
                }
            }
            let consumed = take + usize::from(newline);
            self.inner.consume(consumed);
            self.offset += consumed as u64;
            if newline {
                break;
            }
        }
        self.number += 1;
        if too_long {
            return Ok(Some((self.number, start, Line::TooLong(len))));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some((self.number, start, Line::Text(buf))))
    }

    /// The next CSV record: lines are joined while a quoted field is still open.
    pub async fn next_csv_record(&mut self) -> io::Result<Option<(u64, u64, Line)>> {
        let Some((number, offset, first)) = self.next_line().await? else {
            return Ok(None);
        };
        let Line::Text(mut record) = first else {
            return Ok(Some((number, offset, first)));
        };
        while record.iter().filter(|b| **b == b'"').count() % 2 == 1 {
            match self.next_line().await? {
                Some((_, _, Line::Text(more))) if record.len() + more.len() < self.cap => {
                    record.push(b'\n');
                    record.extend_from_slice(&more);
                }
                Some((_, _, _)) => return Ok(Some((number, offset, Line::TooLong(self.cap + 1)))),
                // An unterminated quote at the end: let the CSV parser say so.
                None => break,
            }
        }
        Ok(Some((number, offset, Line::Text(record))))
    }
}

/// The fields of one CSV record.
pub fn csv_fields(record: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(record);
    let mut out = csv::StringRecord::new();
    match reader.read_record(&mut out) {
        Ok(true) => Ok(out.iter().map(str::to_owned).collect()),
        Ok(false) => Ok(Vec::new()),
        Err(e) => Err(format!("not valid CSV: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], cap: usize) -> Vec<(u64, u64, Line)> {
        let mut r = LineReader::new(input, cap, 0);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn lines_offsets_crlf_and_the_cap() {
        let got = lines(b"ab\r\ncdef\n\nxyz", 3).await;
        assert_eq!(
            got,
            vec![
                (1, 0, Line::Text(b"ab".to_vec())),
                (2, 4, Line::TooLong(4)),
                (3, 9, Line::Text(Vec::new())),
                (4, 10, Line::Text(b"xyz".to_vec())),
            ]
        );
    }

    #[tokio::test]
    async fn csv_records_may_span_lines_inside_quotes() {
        let mut r = LineReader::new(&b"a,b\n1,\"x\ny\"\n2,z\n"[..], 100, 0);
        let mut records = Vec::new();
        while let Some((n, o, Line::Text(t))) = r.next_csv_record().await.unwrap() {
            records.push((n, o, csv_fields(&t).unwrap()));
        }
        assert_eq!(records[1], (2, 4, vec!["1".to_owned(), "x\ny".to_owned()]));
        assert_eq!(records[2], (4, 12, vec!["2".to_owned(), "z".to_owned()]));
    }
}
