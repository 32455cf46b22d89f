//! Splitting a byte stream into lines with a bound on memory.
//!
//! MuonTrap's Daemon (Elixir) cuts a pending line to its first 256 bytes, so a long line that
//! arrives in several chunks loses its middle, and it throws away a last line without a
//! newline when the process exits. Here a line longer than the bound is *delivered in pieces*
//! of the bound (nothing is lost and memory stays bounded), and [`LineSplitter::finish`]
//! delivers the partial last line. `\r` is kept: the bytes are the program's.

/// Splits chunks of bytes into lines of at most `max` bytes (without the `\n`).
#[derive(Debug, Clone)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    /// A splitter delivering pieces of at most `max` bytes (at least 1).
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::new(),
            max: max.max(1),
        }
    }

    /// Feeds a chunk; calls `line` for each complete line (or full piece of a long one).
    ///
    /// A piece that reaches the bound is held until the next byte shows whether the line ends
    /// right there, so a line of exactly `max` bytes is one line however the chunks fall.
    pub fn push(&mut self, mut bytes: &[u8], line: &mut dyn FnMut(&[u8])) {
        while !bytes.is_empty() {
            if self.buf.len() == self.max {
                line(&self.buf);
                self.buf.clear();
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) if self.buf.len() + i <= self.max => {
                    if self.buf.is_empty() {
                        line(&bytes[..i]);
                    } else {
                        self.buf.extend_from_slice(&bytes[..i]);
                        line(&self.buf);
                        self.buf.clear();
                    }
                    bytes = &bytes[i + 1..];
                }
                _ => {
                    let take = (self.max - self.buf.len()).min(bytes.len());
                    self.buf.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                }
            }
        }
    }

    /// Delivers what is left (a last line without a newline), if anything.
    pub fn finish(&mut self, line: &mut dyn FnMut(&[u8])) {
        if !self.buf.is_empty() {
            line(&self.buf);
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut |l| out.push(l.to_vec()));
        }
        s.finish(&mut |l| out.push(l.to_vec()));
        out
    }

    fn v(lines: &[&str]) -> Vec<Vec<u8>> {
        lines.iter().map(|l| l.as_bytes().to_vec()).collect()
    }

    #[test]
    fn muontrap_examples_without_the_truncation() {
        assert_eq!(split(256, &[b"abcd"]), v(&["abcd"]));
        assert_eq!(split(256, &[b"abcd\n\n"]), v(&["abcd", ""]));
        assert_eq!(split(256, &[b"\nabcd"]), v(&["", "abcd"]));
        assert_eq!(split(256, &[b"a\r\nb"]), v(&["a\r", "b"]));
    }

    #[test]
    fn a_long_line_is_split_into_pieces_and_nothing_is_lost() {
        let long = "a".repeat(265);
        let text = format!("{long}\nabcd\nef");
        let got = split(256, &[text.as_bytes()]);
        assert_eq!(got, v(&[&"a".repeat(256), "aaaaaaaaa", "abcd", "ef"]));
    }

    #[test]
    fn a_long_line_over_many_chunks_keeps_its_middle() {
        let text: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let chunks: Vec<&[u8]> = text.chunks(7).collect();
        let got = split(100, &chunks);
        assert_eq!(got.len(), 10);
        assert_eq!(got.concat(), text);
        assert!(got.iter().all(|l| l.len() == 100));
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        assert_eq!(split(256, &[b"ab", b"cd\nef", b"\n"]), v(&["abcd", "ef"]));
    }

    #[test]
    fn a_line_of_exactly_max_bytes_is_one_line() {
        assert_eq!(split(4, &[b"abcd\nefgh\n"]), v(&["abcd", "efgh"]));
        // Held at the bound until the next byte: the newline ends it, no empty line follows.
        assert_eq!(split(4, &[b"abcd", b"\n"]), v(&["abcd"]));
        assert_eq!(split(4, &[b"abcd", b"e\n"]), v(&["abcd", "e"]));
    }

    /// Every way of cutting a text into two chunks gives the same lines.
    #[test]
    fn chunk_boundaries_do_not_matter() {
        let text = b"one\ntwo\n\nthree long line\nfour";
        let whole = split(5, &[text]);
        for cut in 0..=text.len() {
            assert_eq!(split(5, &[&text[..cut], &text[cut..]]), whole, "cut {cut}");
        }
    }

    #[test]
    fn finish_on_empty_delivers_nothing() {
        assert!(split(8, &[]).is_empty());
        assert_eq!(split(8, &[b"x\n"]), v(&["x"]));
    }
}
