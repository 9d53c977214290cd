//! HL7 v2 ER7 ("pipe and hat") encoding, HL7 v2.5.1 chapter 2: §2.5
//! message construction, §2.6 delimiters from MSH-1 and MSH-2, §2.7 escape
//! sequences in text fields.
//!
//! Why our own parser: of the crates on crates.io, `hl7-parser` 0.3 decodes
//! escapes by slicing bytes at *character* indices (wrong, and a panic risk,
//! for any non-ASCII text before an escape), passes `\H\`/`\N\` through as
//! letters and knows only `\X0A\`/`\X0D\` of the hex escapes; `rust-hl7` 0.5
//! calls itself experimental and panics on a malformed `\X\` escape. Notes
//! live in exactly those escapes, so a hundred lines we test beat either.
//!
//! Segments end in a carriage return (§2.5: "the segment terminator is
//! always a carriage return", hex 0D). Real feeds also send CRLF (Windows
//! interface engines) or bare LF (files that passed through Unix tools), and
//! report text often carries bare line feeds inside OBX-5, where the
//! standard would have `\X0A\` or `\.br\` (§2.7.3, §2.7.6). So, as
//! [`segment_lines`] says in full: a CR always ends a segment (a LF right
//! after it belongs to that terminator); a LF ends one only when what
//! follows it starts a segment (a segment ID and the field separator), and
//! is otherwise a line break inside the field it sits in, kept as text. The
//! `hl7` and `hl7apy` packages on PyPI split CR-terminated messages the same
//! way (tests/tests/hl7_line_feeds.rs checks it); both refuse CRLF and
//! LF-terminated messages, which we accept. MLLP framing bytes (VT … FS CR)
//! around the message are ignored.

use super::error::IntakeError;

/// The encoding characters of one message (MSH-1 and MSH-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
    /// The truncation character of v2.7+ (fifth MSH-2 character), if sent.
    pub truncation: Option<char>,
}

/// One segment: its ID and its raw fields, `fields[n]` being field n (for
/// MSH, `fields[1]` is the field separator itself, so MSH-n is `fields[n]`
/// there too).
#[derive(Debug)]
pub(crate) struct Segment<'a> {
    pub name: &'a str,
    fields: Vec<&'a str>,
}

impl<'a> Segment<'a> {
    /// Field `n`, raw (escapes not decoded); "" when absent.
    pub fn field(&self, n: usize) -> &'a str {
        self.fields.get(n).copied().unwrap_or_default()
    }
}

/// A parsed message: delimiters and segments in order.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    pub delimiters: Delimiters,
    pub segments: Vec<Segment<'a>>,
}

/// The longest `.sp`/`.sk` count honoured, so that a hostile `\.sp 999999999\`
/// cannot allocate a gigabyte.
const MAX_FORMAT_REPEAT: usize = 10;

/// Strips MLLP framing (VT before, FS CR after) and a byte order mark.
pub(crate) fn trim_framing(text: &str) -> &str {
    text.trim_start_matches(['\u{feff}', '\u{0b}'])
        .trim_start()
        .trim_end_matches(['\u{1c}', '\r', '\n', ' ', '\t'])
}

/// Parses an ER7 message.
pub(crate) fn parse(text: &str) -> Result<Message<'_>, IntakeError> {
    let text = trim_framing(text);
    let Some(after_msh) = text.strip_prefix("MSH") else {
        return Err(IntakeError::Hl7NoMsh);
    };
    let malformed = |segment, reason| IntakeError::Hl7Malformed { segment, reason };
    let mut chars = after_msh.chars();
    let field = chars.next().filter(|c| is_delimiter(*c)).ok_or(malformed(
        1,
        "MSH-1 field separator must be a printable non-alphanumeric character",
    ))?;
    let encoding: Vec<char> = chars.take_while(|c| *c != field).collect();
    let all_distinct = |cs: &[char]| {
        cs.iter()
            .enumerate()
            .all(|(i, c)| is_delimiter(*c) && *c != field && !cs[..i].contains(c))
    };
    if !(4..=5).contains(&encoding.len()) || !all_distinct(&encoding) {
        return Err(malformed(
            1,
            "MSH-2 must hold four distinct encoding characters (component, repetition, escape, subcomponent)",
        ));
    }
    let delimiters = Delimiters {
        field,
        component: encoding[0],
        repetition: encoding[1],
        escape: encoding[2],
        subcomponent: encoding[3],
        truncation: encoding.get(4).copied(),
    };

    let mut segments = Vec::new();
    for (i, line) in segment_lines(text, field)
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let position = i + 1;
        let mut fields: Vec<&str> = line.split(field).collect();
        let name = fields.first().copied().unwrap_or_default();
        let valid_name = name.len() == 3
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !valid_name {
            return Err(malformed(
                position,
                "segment ID must be three upper-case letters or digits",
            ));
        }
        if name == "MSH" {
            if position > 1 {
                return Err(malformed(
                    position,
                    "more than one message (MSH) in the body",
                ));
            }
            // MSH-1 is the separator itself: put it back so MSH-n is fields[n].
            let sep_len = field.len_utf8();
            fields.insert(1, &line[3..3 + sep_len]);
        }
        segments.push(Segment { name, fields });
    }
    Ok(Message {
        delimiters,
        segments,
    })
}

/// Splits a message into its segments (HL7 v2.5.1 §2.5), each without its
/// terminator:
///
/// - a CR (hex 0D) always ends a segment, and a LF straight after it is part
///   of the same terminator (CRLF);
/// - a LF (hex 0A) elsewhere ends a segment only when the text after it starts
///   like one: three characters, the first an upper-case letter and the others
///   upper-case letters or digits, then the field separator (`PID|`, `OBX|`,
///   `ZDS|`). Otherwise it is a line break inside the current field, and stays
///   in the segment's text as a LF (HL7 would escape it as `\X0A\`, §2.7.3).
///
/// So `OBX|1|TX|||FINDINGS:␊No effusion.||||||F␍` is one segment whose OBX-5
/// holds a line break, in a CR- as in a LF-terminated message. A report line
/// that itself begins with a segment ID and an unescaped field separator
/// would start a segment; a conforming sender escapes that `|` as `\F\`.
/// Blank segments are left to the caller to skip.
pub(crate) fn segment_lines(text: &str, field: char) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let starts_segment = move |at: usize| -> bool {
        let rest = &text[at..];
        let mut chars = rest.chars();
        let id: Vec<char> = chars.by_ref().take(3).collect();
        id.len() == 3
            && id[0].is_ascii_uppercase()
            && id[1..]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && chars.next() == Some(field)
    };
    let mut start = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let at = i;
            match bytes[at] {
                b'\r' => {
                    i += 1;
                    if bytes.get(i) == Some(&b'\n') {
                        i += 1;
                    }
                }
                b'\n' if starts_segment(at + 1) => i += 1,
                _ => {
                    i += 1;
                    continue;
                }
            }
            let segment = &text[start..at];
            start = i;
            return Some(segment);
        }
        (start < bytes.len()).then(|| {
            let segment = &text[start..];
            start = bytes.len();
            segment
        })
    })
}

fn is_delimiter(c: char) -> bool {
    c.is_ascii_graphic() && !c.is_ascii_alphanumeric()
}

impl Delimiters {
    /// Repetitions of a raw field.
    pub fn repetitions<'a>(&self, raw: &'a str) -> impl Iterator<Item = &'a str> + use<'a> {
        raw.split(self.repetition)
    }

    /// Component `n` (1-based) of a raw repetition, raw; "" when absent.
    pub fn component<'a>(&self, raw: &'a str, n: usize) -> &'a str {
        raw.split(self.component)
            .nth(n.saturating_sub(1))
            .unwrap_or_default()
    }

    /// The first subcomponent of component `n`, with escapes decoded; `None`
    /// when blank or the HL7 explicit null `""`.
    pub fn value(&self, raw: &str, n: usize) -> Option<String> {
        let first = self
            .component(raw, n)
            .split(self.subcomponent)
            .next()
            .unwrap_or_default();
        let value = self.unescape(first);
        let value = value.trim();
        (!value.is_empty() && value != "\"\"").then(|| value.to_owned())
    }

    /// Decodes the escape sequences of HL7 v2.5.1 §2.7: delimiters (`\F\ \S\
    /// \T\ \R\ \E\`, v2.7 `\P\`), highlighting (`\H\ \N\`, dropped), hex
    /// data (`\Xhh…\`, read as UTF-8 when valid, else ISO-8859-1) and the
    /// formatted-text commands of §2.7.6 (`\.br\` and `\.sp n\` line breaks,
    /// `\.sk n\` spaces, `\.ce\` a line break; `\.fi\ \.nf\ \.in\ \.ti\`
    /// dropped). Character-set escapes (`\C…\ \M…\`), local `\Z…\` escapes
    /// and unknown sequences are dropped, as §2.7 lets a receiver ignore
    /// them; an escape character with no closing one is kept as text.
    pub fn unescape(&self, raw: &str) -> String {
        let esc = self.escape;
        if !raw.contains(esc) {
            return raw.to_owned();
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(start) = rest.find(esc) {
            out.push_str(&rest[..start]);
            let after = &rest[start + esc.len_utf8()..];
            let Some(end) = after.find(esc) else {
                out.push_str(&rest[start..]);
                return out;
            };
            self.expand(&after[..end], &mut out);
            rest = &after[end + esc.len_utf8()..];
        }
        out.push_str(rest);
        out
    }

    fn expand(&self, seq: &str, out: &mut String) {
        let count = |arg: &str| -> usize {
            arg.trim()
                .parse::<usize>()
                .unwrap_or(1)
                .min(MAX_FORMAT_REPEAT)
        };
        match seq {
            "F" => out.push(self.field),
            "S" => out.push(self.component),
            "T" => out.push(self.subcomponent),
            "R" => out.push(self.repetition),
            "E" => out.push(self.escape),
            "P" => out.push(self.truncation.unwrap_or('#')),
            ".br" | ".ce" => out.push('\n'),
            _ if seq.starts_with(".sp") => {
                let n = count(&seq[3..]);
                out.push('\n');
                out.extend(std::iter::repeat_n('\n', n));
            }
            _ if seq.starts_with(".sk") => out.extend(std::iter::repeat_n(' ', count(&seq[3..]))),
            _ if seq.starts_with('X') => {
                if let Some(bytes) = hex_bytes(&seq[1..]) {
                    match String::from_utf8(bytes) {
                        Ok(s) => out.push_str(&s),
                        Err(e) => out.push_str(&encoding_rs::mem::decode_latin1(e.as_bytes())),
                    }
                }
            }
            // \H\ \N\, .fi .nf .in .ti, \C..\ \M..\ \Z..\, unknown: dropped.
            _ => {}
        }
    }
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delims() -> Delimiters {
        parse("MSH|^~\\&|A").unwrap().delimiters
    }

    #[test]
    fn delimiters_come_from_msh() {
        let msg = parse("MSH#$*!@#A#B\rPID#1#x$y*z").unwrap();
        let d = msg.delimiters;
        assert_eq!(
            (d.field, d.component, d.repetition, d.escape, d.subcomponent),
            ('#', '$', '*', '!', '@')
        );
        assert_eq!(msg.segments[0].field(1), "#");
        assert_eq!(msg.segments[0].field(2), "$*!@");
        assert_eq!(msg.segments[0].field(3), "A");
        assert_eq!(msg.segments[1].field(2), "x$y*z");
        assert_eq!(d.component("x$y*z", 2), "y*z");
        assert_eq!(d.repetitions("x$y*z").collect::<Vec<_>>(), ["x$y", "z"]);
        assert_eq!(d.unescape("a!F!b!S!c!E!"), "a#b$c!");
    }

    #[test]
    fn segments_split_on_cr_lf_and_crlf() {
        for sep in ["\r", "\n", "\r\n"] {
            let text = format!("\u{0b}MSH|^~\\&|A{sep}PID|1{sep}{sep}OBX|1|TX{sep}\u{1c}\r");
            let msg = parse(&text).unwrap();
            let names: Vec<_> = msg.segments.iter().map(|s| s.name).collect();
            assert_eq!(names, ["MSH", "PID", "OBX"]);
        }
    }

    /// A report with line feeds inside OBX-5, as feeds send it, in each of
    /// the three segment terminators.
    #[test]
    fn a_line_feed_inside_a_field_is_text_not_a_segment() {
        for end in ["\r", "\r\n", "\n"] {
            let text = format!(
                "MSH|^~\\&|RIS|GEN{end}PID|1||TP-1{end}\
OBX|1|TX|18782-3^Rad^LN||FINDINGS:\nNo focal consolidation.\n\nIMPRESSION: normal||||||F{end}\
OBX|2|TX|||first line\npid|lower case is text\nZDS|1.2.3{end}"
            );
            let msg = parse(&text).unwrap();
            let names: Vec<_> = msg.segments.iter().map(|s| s.name).collect();
            assert_eq!(names, ["MSH", "PID", "OBX", "OBX", "ZDS"], "{end:?}");
            assert_eq!(
                msg.segments[2].field(5),
                "FINDINGS:\nNo focal consolidation.\n\nIMPRESSION: normal"
            );
            assert_eq!(msg.segments[2].field(11), "F");
            assert_eq!(msg.segments[3].field(5), "first line\npid");
            assert_eq!(msg.segments[3].field(6), "lower case is text");
            assert_eq!(msg.segments[4].field(1), "1.2.3");
        }
    }

    #[test]
    fn segment_lines_keep_every_byte_but_the_terminators() {
        let split = |t: &'static str| segment_lines(t, '|').collect::<Vec<_>>();
        assert_eq!(split("A|1\rB|2"), ["A|1", "B|2"]);
        assert_eq!(split("AB1|x\r\nAB2|y\r\n"), ["AB1|x", "AB2|y"]);
        assert_eq!(split("OBX|a\nb\rNTE|c"), ["OBX|a\nb", "NTE|c"]);
        assert_eq!(split("OBX|a\nNTE|c\nNTE no"), ["OBX|a", "NTE|c\nNTE no"]);
        assert_eq!(split("OBX|a\n\rNTE|c"), ["OBX|a\n", "NTE|c"]);
        assert_eq!(split("OBX|é\nÉTÉ|x"), ["OBX|é\nÉTÉ|x"]);
        assert_eq!(split("A|1\r\r\rB|2"), ["A|1", "", "", "B|2"]);
        assert_eq!(split(""), Vec::<&str>::new());
    }

    #[test]
    fn escapes_of_chapter_2_7() {
        let d = delims();
        assert_eq!(d.unescape(r"a\F\b\S\c\T\d\R\e\E\f"), "a|b^c&d~e\\f");
        assert_eq!(
            d.unescape(r"\H\Impression\N\: no\.br\acute"),
            "Impression: no\nacute"
        );
        assert_eq!(d.unescape(r"caf\XC3A9\ \XE9\"), "café é");
        assert_eq!(d.unescape(r"a\.sp 2\b\.sk 3\c"), "a\n\n\nb   c");
        assert_eq!(
            d.unescape(r"a\.sp 999999999\b").len(),
            2 + MAX_FORMAT_REPEAT + 1
        );
        assert_eq!(d.unescape(r"x\.in 4\\.ti 2\\C2842\\Zlocal\y"), "xy");
        assert_eq!(d.unescape(r"unterminated \F"), r"unterminated \F");
        assert_eq!(d.unescape(r"\Xzz\ok"), "ok");
        assert_eq!(d.unescape("ünïcode \\F\\ ok"), "ünïcode | ok");
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert_eq!(parse("PID|1").unwrap_err(), IntakeError::Hl7NoMsh);
        assert_eq!(
            parse("FHS|^~\\&\rMSH|^~\\&").unwrap_err(),
            IntakeError::Hl7NoMsh
        );
        assert_eq!(parse("MSHA^~\\&").unwrap_err().code(), "hl7_malformed");
        assert_eq!(parse("MSH|^~").unwrap_err().code(), "hl7_malformed");
        assert_eq!(parse("MSH|^^\\&").unwrap_err().code(), "hl7_malformed");
        assert_eq!(
            parse("MSH|^~\\&|A\rpid|1").unwrap_err(),
            IntakeError::Hl7Malformed {
                segment: 2,
                reason: "segment ID must be three upper-case letters or digits"
            }
        );
        assert_eq!(
            parse("MSH|^~\\&|A\rMSH|^~\\&|B").unwrap_err().code(),
            "hl7_malformed"
        );
    }
}
