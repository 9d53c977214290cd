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
//! Segments may end in CR (the standard), LF or CRLF; MLLP framing bytes
//! (VT … FS CR) around the message are ignored.

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
    for (i, line) in text
        .split(['\r', '\n'])
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
