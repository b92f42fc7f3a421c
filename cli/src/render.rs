//! Making bytes and verdicts readable: escaping, the field table, side-by-side
//! comparison. (Errors say ages in human units themselves: `ErrorKind::Expired`'s
//! `Display` is `it is 307 days old`.)

use std::fmt::Write as _;

use countersign::StringToSign;

/// Printable ASCII as is; `\` `\n` `\r` `\t` as escapes; every other byte (control and
/// non-ASCII) as `\xNN`.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// The message as a table of fields with byte offsets, then the whole message escaped.
pub(crate) fn explain_message(message: &StringToSign<'_>) -> String {
    let mut out = String::new();
    let total = message.len();
    let _ = writeln!(out, "message: {total} bytes");
    let mut offset = 0;
    let mut merged: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, bytes) in message.parts() {
        match merged.last_mut() {
            Some((last, acc)) if *last == name => acc.extend_from_slice(bytes),
            _ => merged.push((name, bytes.to_vec())),
        }
    }
    for (name, bytes) in &merged {
        let end = offset + bytes.len();
        let _ = writeln!(
            out,
            "  [{offset:>5}..{end:>5})  {:<15} {:>5} B  {}",
            name,
            bytes.len(),
            escape(bytes)
        );
        offset = end;
    }
    let _ = writeln!(
        out,
        "string to sign (escaped):\n{}",
        escape(&message.to_bytes())
    );
    out
}

/// The offset of the first byte at which `a` and `b` differ (the shorter length when one
/// is a prefix of the other).
pub(crate) fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Two messages, one per line, aligned, with a caret under the first differing byte.
pub(crate) fn side_by_side(
    left_label: &str,
    left: &[u8],
    right_label: &str,
    right: &[u8],
) -> String {
    let first_diff = first_difference(left, right);
    let width = left_label.len().max(right_label.len());
    let prefix_escaped = escape(&left[..first_diff]).chars().count();
    format!(
        "{left_label:>width$}: {}\n{right_label:>width$}: {}\n{:>width$}  {}^ first difference at byte {first_diff}\n",
        escape(left),
        escape(right),
        "",
        " ".repeat(prefix_escaped),
    )
}

/// A string for a POSIX shell, single-quoted.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A single-quoted `printf` format that writes exactly `bytes` in a POSIX shell (bash, dash):
/// printable ASCII as is, `%` as `%%`, `\` as `\\`, the quote, a leading `-` and every
/// other byte (NUL, control, non-ASCII) as a three-digit octal escape, newline, tab and
/// carriage return as `\n` `\t` `\r`. The result is ASCII, one line.
pub(crate) fn printf_format(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('\'');
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' => out.push_str("%%"),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            // A leading `-` would be read as an option of printf.
            b'-' if i == 0 => out.push_str("\\055"),
            b'\'' => out.push_str("\\047"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_every_byte_visible() {
        assert_eq!(
            escape(b"a\\b\n\t\x00\xc3\xbc~"),
            "a\\\\b\\n\\t\\x00\\xc3\\xbc~"
        );
    }

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn printf_format_escapes_every_special_byte() {
        assert_eq!(
            printf_format(b"-a%\\'\n\x00\xff7-"),
            r"'\055a%%\\\047\n\000\3777-'"
        );
    }

    #[test]
    fn side_by_side_points_at_the_difference() {
        let text = side_by_side("ours", b"abc/", "theirs", b"abc");
        assert!(text.contains("first difference at byte 3"), "{text}");
    }
}
