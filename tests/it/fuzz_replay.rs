//! The fuzz targets (`fuzz/src/lib.rs`) on stable, without libFuzzer: each
//! target runs over its seeds (built here), every file under
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (inputs libFuzzer
//! saved: a crash found by a long run becomes a regression test by staying
//! there), and a deterministic stream of mutations of those inputs.
//!
//! `FUZZ_REPLAY_ITERS` sets the mutations per target (default 1500). The
//! coverage-guided runs need nightly and cargo-fuzz; see fuzz/README.md.

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

/// A small deterministic PRNG (xorshift64*): the same inputs every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that matter to the parsers, spliced in by the mutator.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n.\r\n",
    b"\n.\n",
    b"\r\n\x00.\r\n",
    b"\r\n.\x00\r\n",
    b"\x00",
    b"\r",
    b"\n",
    b"DATA\r\n",
    b"BDAT 10 LAST\r\n",
    b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n",
    b"RCPT TO:<postmaster>\r\n",
    b"RCPT TO: x@y.example\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN !!!\r\n",
    b"Subject: x\r\n",
    b" folded\r\n",
    b"not a header\r\n",
    b"Name : v\r\n",
    b"250-",
    b"250 2.0.0 ok\r\n",
    b":",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(out.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                out.splice(i..i, t.iter().copied());
            }
            3 if out.len() > 1 => {
                let a = rng.below(out.len());
                let b = (a + 1 + rng.below(16)).min(out.len());
                out.drain(a..b);
            }
            _ => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
        }
    }
    out
}

/// Files under `fuzz/<dir>/<target>/`.
fn files(dir: &str, target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    paths
        .iter()
        .filter(|p| p.is_file())
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

fn replay(target: &str, seeds: Vec<Vec<u8>>, run: fn(&[u8])) {
    let mut inputs = seeds;
    inputs.extend(files("corpus", target));
    inputs.extend(files("artifacts", target));
    for input in &inputs {
        run(input);
    }
    let iters = std::env::var("FUZZ_REPLAY_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500usize);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for _ in 0..iters {
        let base = &inputs[rng.below(inputs.len())];
        let input = mutate(&mut rng, base);
        run(&input);
    }
}

/// An engine input: config bytes, then (len, repeat, bytes) chunks.
fn engine_input(ctl: u8, ctl2: u8, chunks: &[(&[u8], u8)]) -> Vec<u8> {
    let mut v = vec![ctl, ctl2];
    for (bytes, repeat) in chunks {
        for piece in bytes.chunks(255) {
            v.push(piece.len() as u8);
            v.push(*repeat);
            v.extend_from_slice(piece);
        }
    }
    v
}

#[test]
fn engine_target() {
    let txn: &[u8] =
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n";
    let line: &[u8] = b"0123456789012345678901234567890123456789012345678901234567890123456789\r\n";
    let seeds = vec![
        // a 3 MiB message: one 72-octet line repeated 43,681 times (repeat 104)
        engine_input(
            8,
            3,
            &[
                (txn, 0),
                (b"Subject: big\r\n\r\n", 0),
                (line, 104),
                (b".\r\nQUIT\r\n", 0),
            ],
        ),
        // the same over the 64 KiB limit: 552, then commands again
        engine_input(
            8,
            1,
            &[(txn, 0), (b"Subject: big\r\n\r\n", 0), (line, 30), (b".\r\nNOOP\r\n", 0)],
        ),
        engine_input(0, 0, &[(txn, 0), (b"Subject: a\r\n\r\nb\r\n\x00.\r\nQUIT\r\n.\r\n", 0)]),
        engine_input(0, 0, &[(txn, 0), (b"Subject: a\r\nnot a header\r\nX: 1\r\n.\r\n", 0)]),
        engine_input(
            8,
            0,
            &[(
                b"EHLO c\r\nMAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<postmaster>\r\nBDAT 5 LAST\r\na\x00bcd",
                0,
            )],
        ),
        engine_input(
            6 | 128,
            0,
            &[(txn, 0), (b"A: 1\r\n\r\nx\r\n.\r\nQUIT\r\n", 0)],
        ),
        engine_input(
            6 | 64,
            0,
            &[(
                b"EHLO c\r\nAUTH PLAIN !!!\r\nAUTH LOGIN\r\n%%\r\nMAIL FROM: a@b\r\nNOOP\r\nNOOP\r\n",
                0,
            )],
        ),
        engine_input(
            1,
            0,
            &[(b"EHLO c\r\nSTARTTLS\r\nRSET\r\nEHLO d\r\n", 0)],
        ),
    ];
    replay("engine", seeds, targets::engine);
}

#[test]
fn headers_target() {
    let seeds: Vec<Vec<u8>> = [
        &b"\x00Subject: hi\r\nX-A: 1\r\n folded\r\nFrom: a@b\r\n\r\nbody\r\n"[..],
        b"\x03Subject : spaced\r\n\r\nbody",
        b"\x02no header block at all",
        b"\x01\r\nbody only",
        b"\x07X-Raw: \xff\xfe 8-bit\r\nReceived: a\r\nReceived: b\r\n\r\n",
        b"\x05A: 1\nB: 2\n\nbody\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    replay("headers", seeds, targets::headers);
}

#[test]
fn upstream_reply_target() {
    let seeds: Vec<Vec<u8>> = [
        &b"220 mx.example ESMTP\r\n"[..],
        b"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n",
        b"550 5.1.1 <a@b>: unknown\r\n452 4.5.3 too many\r\n",
        b"250-a\r\n251 b\r\n",
        b"354\r\n",
        b"250 2.0.0",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    replay("upstream_reply", seeds, targets::upstream_reply);
}
