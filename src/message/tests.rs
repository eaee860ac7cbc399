//! Unit tests of [`super::Message`]: byte-exact edits, header bounds,
//! folding, and the one-buffer lifecycle.

use super::*;

const MSG: &[u8] = b"Subject: hi\r\nX-A: 1\r\n folded\r\nFrom: a@b\r\n\r\nbody\r\n";

#[test]
fn eight_bit_found_at_every_position() {
    for len in [0usize, 1, 31, 32, 33, 64, 100, 1000] {
        let clean = vec![b'a'; len];
        assert!(!has_8bit(&clean), "{len}");
        for at in 0..len {
            let mut v = clean.clone();
            v[at] = 0x80 | (at as u8);
            assert!(has_8bit(&v), "{len} {at}");
        }
    }
}

#[test]
fn unedited_is_byte_exact() {
    let m = Message::parse(MSG.to_vec());
    assert_eq!(m.to_bytes().as_ref(), MSG);
    assert_eq!(m.header_values("x-a"), vec!["1 folded".to_string()]);
    assert_eq!(m.body(), b"body\r\n");
    let [head, body] = m.delivery_parts();
    assert_eq!([head.as_ref(), body.as_ref()].concat(), MSG);
}

#[test]
fn edits_reach_the_output() {
    let mut m = Message::parse(MSG.to_vec());
    m.prepend_header("X-Top", "t").unwrap();
    m.replace_header("subject", "new").unwrap();
    assert_eq!(m.remove_header("From"), 1);
    m.replace_body(b"other\r\n".to_vec(), 1000).unwrap();
    assert_eq!(
        m.to_bytes().as_ref(),
        b"X-Top: t\r\nsubject: new\r\nX-A: 1\r\n folded\r\n\r\nother\r\n"
    );
    assert_eq!(m.len(), m.to_bytes().len());
    let [head, body] = m.delivery_parts();
    assert_eq!(
        [head.as_ref(), body.as_ref()].concat(),
        m.to_bytes().as_ref()
    );
}

/// Issue 14 item 10: fields nobody touched keep every octet (8-bit bytes,
/// `Name :` spacing, folds with tabs, odd case) when another field is
/// added, prepended, replaced or removed.
#[test]
fn edits_leave_other_fields_byte_exact() {
    let head: &[u8] = b"From : \xe9t\xe9 <a@b.test>\r\n\
        Subject:\tcaf\xc3\xa9 \xff\xfe raw\r\n\
        X-Folded: one\r\n\t  two   \r\n three\r\n\
        DKIM-Signature: v=1; a=rsa-sha256; d=b.test;\r\n\tb=abc\r\n\
        x-lower:no-space\r\n\r\n";
    let body: &[u8] = b"body \xe9\r\n";
    let raw = [head, body].concat();
    let mut m = Message::parse(raw.clone());
    m.add_header("X-Stamp", "added").unwrap();
    m.prepend_header("X-Top", "top").unwrap();
    let out = m.to_bytes().into_owned();
    let mut expected = b"X-Top: top\r\n".to_vec();
    expected.extend_from_slice(&head[..head.len() - 2]);
    expected.extend_from_slice(b"X-Stamp: added\r\n\r\n");
    expected.extend_from_slice(body);
    assert_eq!(out, expected);

    let mut m = Message::parse(raw.clone());
    assert_eq!(m.remove_header("x-folded"), 1);
    let out = m.to_bytes().into_owned();
    let mut expected = head.to_vec();
    let at = memchr::memmem::find(&expected, b"X-Folded").unwrap();
    let end = memchr::memmem::find(&expected, b"DKIM").unwrap();
    expected.drain(at..end);
    expected.extend_from_slice(body);
    assert_eq!(out, expected);
    // The spaced name still matches by name.
    assert_eq!(m.header_values("from").len(), 1);
}

#[test]
fn injection_refused() {
    let mut m = Message::parse(MSG.to_vec());
    assert_eq!(m.add_header("X", "a\r\nBcc: x"), Err(EditError::BadValue));
    assert!(matches!(
        m.add_header("Bad Name", "v"),
        Err(EditError::BadName(_))
    ));
    assert_eq!(
        m.replace_body(b"a\nb".to_vec(), 100),
        Err(EditError::BadBody)
    );
    assert_eq!(
        m.replace_body(vec![b'a'; 200], 100),
        Err(EditError::TooLarge(100))
    );
}

/// Issue 14 item 3: an added field is folded at white space to 78 octets
/// where it can be, and refused when a line would pass 998.
#[test]
fn added_fields_are_folded_or_refused() {
    let words: Vec<String> = (0..2000).map(|i| format!("w{i}")).collect();
    let value = words.join(" ");
    let f = fold_field("X-Long", &value).unwrap();
    for line in f.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(line.len() <= FOLD_AT, "{}", line.len());
    }
    // Unfolding gives the value back.
    let m = {
        let mut m = Message::parse(MSG.to_vec());
        m.add_header("X-Long", &value).unwrap();
        m
    };
    assert_eq!(m.header_values("X-Long"), vec![value]);
    // One 64 KiB token cannot be folded.
    let mut m = Message::parse(MSG.to_vec());
    assert_eq!(
        m.add_header("X-Big", &"y".repeat(64 << 10)),
        Err(EditError::LineTooLong)
    );
    // A token of 990 octets fits on a continuation line.
    let v = format!("a {}", "z".repeat(990));
    let f = fold_field("X-Edge", &v).unwrap();
    assert!(
        f.split(|&b| b == b'\n')
            .all(|l| l.len() <= MAX_HEADER_LINE + 1)
    );
}

/// Issue 14 item 1: the header section is bounded before any field is
/// parsed.
#[test]
fn header_limits() {
    let limits = HeaderLimits {
        max_fields: 1000,
        max_bytes: 1 << 20,
    };
    let many = b"a: b\r\n".repeat(1001);
    assert_eq!(
        Message::parse_prefix(&many, &limits),
        Err(HeaderError::TooManyFields(1000))
    );
    let ok = b"a: b\r\n".repeat(1000);
    let mut with_body = ok.clone();
    with_body.extend_from_slice(b"\r\nbody\r\n");
    let m = Message::parse_prefix(&with_body, &limits).unwrap();
    assert_eq!(m.field_count(), 1000);
    let big = format!("X-Big: {}\r\n", "y".repeat(1 << 20));
    assert_eq!(
        Message::parse_prefix(big.as_bytes(), &limits),
        Err(HeaderError::TooLarge(1 << 20))
    );
    // Folded lines count toward the octets, not the fields.
    let folded = format!("X-F: a\r\n{}\r\n", " b\r\n".repeat(300_000));
    assert_eq!(
        Message::parse_prefix(folded.as_bytes(), &limits),
        Err(HeaderError::TooLarge(1 << 20))
    );
}

/// A line that is not a field ends the header section: fields a plugin adds
/// land before it, with the empty line inserted.
#[test]
fn non_field_line_starts_the_body() {
    let raw = b"Subject: s\r\nthis is not a header\r\nFrom: x@y\r\n\r\nmore\r\n".to_vec();
    let mut m = Message::parse(raw.clone());
    assert_eq!(m.field_count(), 1);
    assert_eq!(m.to_bytes().as_ref(), raw.as_slice());
    m.add_header("X-Stamp", "1").unwrap();
    assert_eq!(
        m.to_bytes().as_ref(),
        b"Subject: s\r\nX-Stamp: 1\r\n\r\nthis is not a header\r\nFrom: x@y\r\n\r\nmore\r\n"
    );
}

/// The prefix parsed at data-headers becomes the full message without a
/// copy; edits made before stay.
#[test]
fn complete_keeps_edits_and_takes_the_buffer() {
    let full = MSG.to_vec();
    let prefix = &full[..full.len() - 3];
    let mut m = Message::parse_prefix(prefix, &HeaderLimits::default()).unwrap();
    m.add_header("X-Early", "e").unwrap();
    let ptr = full.as_ptr();
    m.complete(full);
    assert_eq!(m.received_body_bytes().as_ptr(), ptr.wrapping_add(43));
    assert_eq!(m.body(), b"body\r\n");
    assert!(
        m.to_bytes()
            .ends_with(b"From: a@b\r\nX-Early: e\r\n\r\nbody\r\n")
    );
}

#[test]
fn bare_detection() {
    assert!(!has_bare_cr_lf_or_nul(b"a\r\nb\r\n"));
    assert!(has_bare_cr_lf_or_nul(b"a\nb"));
    assert!(has_bare_cr_lf_or_nul(b"a\rb"));
    assert!(has_bare_cr_lf_or_nul(b"a\r"));
    assert!(has_bare_cr_lf_or_nul(b"a\0"));
    assert!(has_bare_cr_lf_or_nul(b"\nab"));
    assert!(has_bare_cr_lf_or_nul(b"a\r\n\nb"));
    assert!(has_bare_cr_lf_or_nul(b"a\r\r\nb"));
    assert!(!has_bare_cr_lf_or_nul(b""));
    assert!(!has_bare_cr_lf_or_nul(b"\r\n\r\n"));
    let mut long = b"0123456789\r\n".repeat(1000);
    assert!(!has_bare_cr_lf_or_nul(&long));
    long.push(b'\n');
    assert!(has_bare_cr_lf_or_nul(&long));
}
