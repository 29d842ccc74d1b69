//! TOTP codes computed by RFC 6238 itself (HMAC-SHA1, 6 digits, 30 s steps), not by the
//! server's library, for the two-factor tests.

use std::time::Duration;

use hmac::{Hmac, Mac};

/// A TOTP secret of the spec's 64 base32 characters.
pub const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn base32_decode(s: &str) -> Vec<u8> {
    let (mut bits, mut acc, mut out) = (0u32, 0u64, Vec::new());
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// RFC 6238 (HMAC-SHA1, 6 digits, 30 s) for unix time `t`.
pub fn totp_at(t: u64) -> i64 {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&base32_decode(SECRET)).unwrap();
    mac.update(&(t / 30).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = (h[19] & 0xf) as usize;
    let n = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]);
    i64::from(n % 1_000_000)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The current time, at least 8 s before the next 30 s step begins.
pub async fn well_inside_a_step() -> u64 {
    let t = unix_now();
    if t % 30 > 22 {
        tokio::time::sleep(Duration::from_secs(31 - t % 30)).await;
    }
    unix_now()
}
