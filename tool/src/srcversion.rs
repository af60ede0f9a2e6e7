//! srcversion as modpost computes it (`scripts/mod/sumversion.c`), DESIGN.md section 6:
//! the kernel's MD4 over a tokenised stream of the module's sources, as uppercase hex
//! truncated to 23 digits. Library code for `bench build`; the file walk over `.mod` and
//! `.o.cmd` files and the tests against `modinfo` come with that command.

/// Feeds the bytes of one source file to `out` the way modpost's `parse_file` does:
/// backslash-newline dropped, C whitespace dropped, `"` strings verbatim up to a `"` not
/// preceded by a backslash, `/* ... */` skipped (`/*/` is a whole comment), the rest kept
/// (`//` comments included).
pub fn tokenize(file: &[u8], out: &mut Vec<u8>) {
    let len = file.len();
    let mut i = 0;
    while i < len {
        let c = file[i];
        if c == b'\\' && i + 1 < len && file[i + 1] == b'\n' {
            i += 2;
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            i += 1;
            continue;
        }
        if c == b'"' {
            out.push(c);
            let mut j = i + 1;
            while j < len {
                out.push(file[j]);
                if file[j] == b'"' && file[j - 1] != b'\\' {
                    break;
                }
                j += 1;
            }
            i = j + 1;
            continue;
        }
        if c == b'/' && i + 1 < len && file[i + 1] == b'*' {
            let mut j = i + 2;
            while j < len && !(file[j - 1] == b'*' && file[j] == b'/') {
                j += 1;
            }
            i = j + 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
}

/// The kernel's MD4 as sumversion.c uses it, as uppercase hex of the digest truncated to
/// 23 digits. Equal to: pad as MD4 does, reverse the bytes of every 4-byte group of the
/// padded body, append the bit length little-endian, run standard MD4.
pub fn kernel_md4_hex(data: &[u8]) -> String {
    let mut body = data.to_vec();
    body.push(0x80);
    while body.len() % 64 != 56 {
        body.push(0);
    }
    for group in body.chunks_exact_mut(4) {
        group.reverse();
    }
    body.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for block in body.chunks_exact(64) {
        md4_compress(&mut state, block);
    }
    let mut hex = String::with_capacity(32);
    for word in state {
        for byte in word.to_le_bytes() {
            hex.push_str(&format!("{byte:02X}"));
        }
    }
    hex.truncate(23);
    hex
}

fn md4_compress(state: &mut [u32; 4], block: &[u8]) {
    let x: Vec<u32> = block.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
    let [mut a, mut b, mut c, mut d] = *state;
    let f = |x: u32, y: u32, z: u32| (x & y) | (!x & z);
    let g = |x: u32, y: u32, z: u32| (x & y) | (x & z) | (y & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    for i in [0, 4, 8, 12] {
        a = a.wrapping_add(f(b, c, d)).wrapping_add(x[i]).rotate_left(3);
        d = d.wrapping_add(f(a, b, c)).wrapping_add(x[i + 1]).rotate_left(7);
        c = c.wrapping_add(f(d, a, b)).wrapping_add(x[i + 2]).rotate_left(11);
        b = b.wrapping_add(f(c, d, a)).wrapping_add(x[i + 3]).rotate_left(19);
    }
    const K2: u32 = 0x5a82_7999;
    for i in 0..4 {
        a = a.wrapping_add(g(b, c, d)).wrapping_add(x[i]).wrapping_add(K2).rotate_left(3);
        d = d.wrapping_add(g(a, b, c)).wrapping_add(x[i + 4]).wrapping_add(K2).rotate_left(5);
        c = c.wrapping_add(g(d, a, b)).wrapping_add(x[i + 8]).wrapping_add(K2).rotate_left(9);
        b = b.wrapping_add(g(c, d, a)).wrapping_add(x[i + 12]).wrapping_add(K2).rotate_left(13);
    }
    const K3: u32 = 0x6ed9_eba1;
    for i in [0, 2, 1, 3] {
        a = a.wrapping_add(h(b, c, d)).wrapping_add(x[i]).wrapping_add(K3).rotate_left(3);
        d = d.wrapping_add(h(a, b, c)).wrapping_add(x[i + 8]).wrapping_add(K3).rotate_left(9);
        c = c.wrapping_add(h(d, a, b)).wrapping_add(x[i + 4]).wrapping_add(K3).rotate_left(11);
        b = b.wrapping_add(h(c, d, a)).wrapping_add(x[i + 12]).wrapping_add(K3).rotate_left(15);
    }
    state[0] = state[0].wrapping_add(a);
    state[1] = state[1].wrapping_add(b);
    state[2] = state[2].wrapping_add(c);
    state[3] = state[3].wrapping_add(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_vectors_hold() {
        assert_eq!(kernel_md4_hex(b""), "533BB7E5866E52F63B9ACCB");
        assert_eq!(kernel_md4_hex(b"abc"), "C719445509BC140AF62F422");
    }

    #[test]
    fn md4_spans_several_blocks() {
        // 56 bytes force a second padding block; the result must differ from 55 bytes'.
        assert_ne!(kernel_md4_hex(&[b'a'; 55]), kernel_md4_hex(&[b'a'; 56]));
        assert_eq!(kernel_md4_hex(&[b'a'; 200]).len(), 23);
    }

    fn tok(s: &str) -> String {
        let mut out = Vec::new();
        tokenize(s.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tokenizer_follows_modpost() {
        assert_eq!(tok("int  x =\t1;\n"), "intx=1;");
        assert_eq!(tok("a\\\nb"), "ab", "backslash-newline dropped");
        assert_eq!(tok("s = \"a b\\\" c\";"), "s=\"a b\\\" c\";", "strings verbatim");
        assert_eq!(tok("x /* gone */ y"), "xy");
        assert_eq!(tok("x /*/ y"), "xy", "`/*/` is a whole comment");
        assert_eq!(tok("x /*/ y */ z"), "xy*/z");
        assert_eq!(tok("x // kept\ny"), "x//kepty", "line comments are hashed");
    }
}
