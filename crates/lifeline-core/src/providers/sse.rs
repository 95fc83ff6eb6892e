//! What every stream grammar reads with: SSE's own syntax (a `data:`
//! line's payload, the lines of a buffer) and cheap searches in an event's
//! JSON that parse nothing (a key's integer value, whether a key has a
//! non-empty string). No protocol's names are here: each adapter's
//! `stream.rs` says which keys mean what.

use memchr::memmem;

/// A JSON key searched for in every event, with its searcher built once:
/// building a `memmem` searcher per call costs more than the search itself
/// on a short event.
pub type Key = std::sync::LazyLock<memmem::Finder<'static>>;

/// Declares [`Key`]s: `keys! { NAME = b"\"key\":"; }`.
macro_rules! keys {
    ($($name:ident = $needle:expr;)*) => {
        $(static $name: $crate::providers::sse::Key =
            std::sync::LazyLock::new(|| ::memchr::memmem::Finder::new($needle));)*
    };
}
pub(crate) use keys;

/// The payload of a `data:` line (its optional leading space removed).
pub fn data_payload(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"data:")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// The name of an `event:` line (its optional leading space removed).
pub fn event_name(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"event:")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// A line without its line end (`\n`, `\r\n`).
pub fn bare(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether `buf` ends on an event boundary (a blank line), or is empty.
pub fn at_boundary(buf: &[u8]) -> bool {
    buf.ends_with(b"\n\n") || buf.ends_with(b"\n\r\n") || buf.is_empty()
}

/// A field of an SSE line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// An `event:` line's name.
    Event(&'a [u8]),
    /// A `data:` line's payload.
    Data(&'a [u8]),
}

/// The `event:` and `data:` fields of `buf`'s lines, in order (comments,
/// blank lines and other fields skipped).
pub fn fields(buf: &[u8]) -> impl Iterator<Item = Field<'_>> {
    buf.split(|b| *b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        event_name(line)
            .map(Field::Event)
            .or_else(|| data_payload(line).map(Field::Data))
    })
}

/// The last integer value of `key` in `p`: the last occurrence of the key
/// followed by `:` and an integer. Inside a JSON string the key's quotes
/// would be escaped, so text a model wrote cannot pass for it.
#[inline]
pub fn last_integer(p: &[u8], key: &Key) -> Option<u64> {
    let len = key.needle().len();
    let mut found = None;
    let mut from = 0;
    while let Some(i) = key.find(&p[from..]) {
        from += i + len;
        if let Some(n) = integer_after_colon(&p[from..]) {
            found = Some(n);
        }
    }
    found
}

/// The integer after `:` (spaces allowed around it), if there is one.
fn integer_after_colon(rest: &[u8]) -> Option<u64> {
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// Whether `key` is followed (after optional spaces) by a non-empty string.
pub fn non_empty_string_after(p: &[u8], key: &Key) -> bool {
    let key_len = key.needle().len();
    let mut from = 0;
    while let Some(i) = key.find(&p[from..]) {
        let mut j = from + i + key_len;
        while p.get(j) == Some(&b' ') {
            j += 1;
        }
        if p.get(j) == Some(&b'"') && p.get(j + 1).is_some_and(|c| *c != b'"') {
            return true;
        }
        from = j;
    }
    false
}

/// Where the first event of `lines` (complete SSE lines) that `is_error`
/// says is an error starts. `is_error` sees each `event:` line's name
/// (`Ok`) and each `data:` line's payload (`Err`).
pub fn event_start(lines: &[u8], is_error: impl Fn(Result<&[u8], &[u8]>) -> bool) -> Option<usize> {
    let mut event = 0;
    let mut at = 0;
    for line in lines.split_inclusive(|b| *b == b'\n') {
        let b = bare(line);
        at += line.len();
        if b.is_empty() {
            event = at;
            continue;
        }
        if let Some(name) = b.strip_prefix(b"event:") {
            if is_error(Ok(name.trim_ascii())) {
                return Some(event);
            }
            continue;
        }
        if data_payload(b).is_some_and(|p| is_error(Err(p))) {
            return Some(event);
        }
    }
    None
}

/// The first `data:` payload of an event, parsed.
pub fn first_data(event: &[u8]) -> Option<serde_json::Value> {
    let payload = event
        .split(|b| *b == b'\n')
        .map(bare)
        .find_map(data_payload);
    payload.and_then(|p| serde_json::from_slice(p).ok())
}
