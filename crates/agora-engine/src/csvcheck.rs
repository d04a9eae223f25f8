//! A strict check of a CSV file's shape before it is registered: every quoted field
//! closed, every line with as many fields as the header. The CSV reader is lenient — an
//! unterminated quote swallows the rest of the file into one field, and ragged lines are
//! padded or refused only when they are read — so a steward learns of either at
//! registration, with the line number, instead of from missing rows later.
//!
//! Quotes follow RFC 4180 as the reader does: a quote opens a quoted field only at the
//! start of a field, `""` inside one is a quote, and a quote elsewhere is text.

/// How the check stands after the bytes fed so far.
#[derive(Debug)]
pub(crate) struct CsvShape {
    delimiter: u8,
    line: u64,
    in_quotes: bool,
    /// Inside quotes, a quote was just seen: `""` (text) or the closing quote.
    quote_pending: bool,
    quote_line: u64,
    at_field_start: bool,
    /// The line the current record started on, and whether it has anything in it.
    record_line: u64,
    record_has_content: bool,
    fields: usize,
    /// The field count of the first record (the header, when there is one).
    expected: Option<usize>,
    records: u64,
    /// Outside quotes on the first line: how often each other likely delimiter occurs.
    first_line_others: [u64; OTHER_DELIMITERS.len()],
}

/// Delimiters a file given without `--delimiter` may really use.
const OTHER_DELIMITERS: [u8; 4] = [b';', b'\t', b'|', b','];

impl CsvShape {
    pub(crate) fn new(delimiter: u8) -> Self {
        Self {
            delimiter,
            line: 1,
            in_quotes: false,
            quote_pending: false,
            quote_line: 0,
            at_field_start: true,
            record_line: 1,
            record_has_content: false,
            fields: 0,
            expected: None,
            records: 0,
            first_line_others: [0; OTHER_DELIMITERS.len()],
        }
    }

    /// Records seen so far, the header included.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        for &b in bytes {
            if self.quote_pending {
                self.quote_pending = false;
                if b == b'"' {
                    continue; // `""`: a quote inside the field
                }
                self.in_quotes = false;
            }
            if self.in_quotes {
                match b {
                    b'"' => self.quote_pending = true,
                    b'\n' => self.line += 1,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' if self.at_field_start => {
                    self.in_quotes = true;
                    self.quote_line = self.line;
                    self.at_field_start = false;
                    self.record_has_content = true;
                }
                b'\n' => {
                    self.end_record()?;
                    self.line += 1;
                    self.record_line = self.line;
                }
                b'\r' => {}
                _ if b == self.delimiter => {
                    self.fields += 1;
                    self.at_field_start = true;
                    self.record_has_content = true;
                }
                _ => {
                    if self.expected.is_none()
                        && let Some(i) = OTHER_DELIMITERS.iter().position(|&d| d == b)
                    {
                        self.first_line_others[i] += 1;
                    }
                    self.at_field_start = false;
                    self.record_has_content = true;
                }
            }
        }
        Ok(())
    }

    /// On a first line of one field, the other delimiter it holds most often.
    fn likely_delimiter(&self) -> Option<u8> {
        let (i, &n) = self
            .first_line_others
            .iter()
            .enumerate()
            .filter(|(i, _)| OTHER_DELIMITERS[*i] != self.delimiter)
            .max_by_key(|(_, n)| **n)?;
        (n > 0).then_some(OTHER_DELIMITERS[i])
    }

    fn end_record(&mut self) -> Result<(), String> {
        if self.record_has_content {
            let count = self.fields + 1;
            match self.expected {
                None if count == 1
                    && let Some(d) = self.likely_delimiter() =>
                {
                    let shown = if d == b'\t' {
                        "\\t".to_owned()
                    } else {
                        (d as char).to_string()
                    };
                    return Err(format!(
                        "line 1 is one single column holding {shown:?} but no {:?}: the file looks {shown:?}-delimited — give the delimiter (--delimiter '{shown}', or delimiter = \"{shown}\" in the sidecar)",
                        self.delimiter as char
                    ));
                }
                None => self.expected = Some(count),
                Some(e) if e != count => {
                    return Err(format!(
                        "line {} has {count} field{} but line 1 has {e}: every line needs the same number — look for a stray delimiter or a quote that is not closed",
                        self.record_line,
                        if count == 1 { "" } else { "s" }
                    ));
                }
                Some(_) => {}
            }
            self.records += 1;
        }
        self.fields = 0;
        self.at_field_start = true;
        self.record_has_content = false;
        Ok(())
    }

    /// The end of the file.
    pub(crate) fn finish(&mut self) -> Result<(), String> {
        if self.quote_pending {
            self.quote_pending = false;
            self.in_quotes = false;
        }
        if self.in_quotes {
            return Err(format!(
                "the quoted field opened on line {} is never closed: the rest of the file would be read as one value — close the quote (a quote inside a quoted field is written \"\")",
                self.quote_line
            ));
        }
        self.end_record()
    }
}

/// Checks a whole text.
#[cfg(test)]
fn check(text: &str, delimiter: u8) -> Result<u64, String> {
    let mut s = CsvShape::new(delimiter);
    // Fed in small pieces: a quote or line end split between chunks counts the same.
    for chunk in text.as_bytes().chunks(3) {
        s.feed(chunk)?;
    }
    s.finish()?;
    Ok(s.records())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn well_formed_files_pass() {
        assert_eq!(check("a,b\n1,2\n3,4\n", b','), Ok(3));
        assert_eq!(check("a,b\r\n1,2\r\n3,4", b','), Ok(3));
        assert_eq!(
            check(
                "a,b\n\"x, y\",2\n\"line\nbreak\",\"say \"\"hi\"\"\"\n",
                b','
            ),
            Ok(3)
        );
        assert_eq!(check("a;b\n1;2\n", b';'), Ok(2));
        assert_eq!(
            check("a,b\n5\" pipe,2\n", b','),
            Ok(2),
            "a quote inside text"
        );
        assert_eq!(check("a,b\n\n1,2\n\n", b','), Ok(2), "blank lines");
        assert_eq!(check("a,b\n", b','), Ok(1), "a header alone");
        assert_eq!(check("", b','), Ok(0));
    }

    #[test]
    fn a_file_with_another_delimiter_gets_the_delimiter_suggested() {
        let e = check("name;age;town\nAda;36;Northport\n", b',').unwrap_err();
        assert!(e.contains("--delimiter ';'"), "{e}");
        let e = check("name\tage\nAda\t36\n", b',').unwrap_err();
        assert!(e.contains("--delimiter '\\t'"), "{e}");
        // One real column, and a header quoting the other delimiter, are fine.
        assert_eq!(check("name\nAda; Bob\n", b','), Ok(2));
        assert_eq!(check("\"a;b\"\n1\n", b','), Ok(2));
    }

    #[test]
    fn an_unterminated_quote_is_named_with_its_line() {
        let e = check("a,b\n1,2\n3,\"four\n5,6\n7,8\n", b',').unwrap_err();
        assert!(e.contains("opened on line 3 is never closed"), "{e}");
        let e = check("a,b\n\"x,1\n", b',').unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn ragged_lines_are_named_with_their_line() {
        let e = check("a,b,c\n1,2,3\n4,5\n6,7,8\n", b',').unwrap_err();
        assert!(e.starts_with("line 3 has 2 fields but line 1 has 3"), "{e}");
        let e = check("a,b\n1,2\n\"multi\nline\",2,3\n", b',').unwrap_err();
        assert!(e.starts_with("line 3 has 3 fields"), "{e}");
        let e = check("a;b\n1;2;3\n", b';').unwrap_err();
        assert!(e.starts_with("line 2 has 3 fields"), "{e}");
    }

    proptest! {
        /// Any table written with proper quoting passes, however it is split.
        #[test]
        fn quoted_tables_always_pass(
            rows in prop::collection::vec(prop::collection::vec("[a-z,\"\n ]{0,8}", 3), 1..20)
        ) {
            let quote = |v: &String| format!("\"{}\"", v.replace('"', "\"\""));
            let text: String = rows
                .iter()
                .map(|r| r.iter().map(quote).collect::<Vec<_>>().join(",") + "\n")
                .collect();
            prop_assert_eq!(check(&text, b','), Ok(rows.len() as u64));
        }
    }
}
