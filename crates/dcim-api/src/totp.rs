//! Two-factor authentication by TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps,
//! one step of clock skew either way), as authenticator apps expect it; reserve codes;
//! and the QR code (a PNG) that carries a secret to such an app.
//!
//! Following Auth v4, the client makes the secret (64 base32 characters, 320 bits),
//! shows it as a QR code (`POST /auth/v4/public/2fa/qrcode`), and turns 2FA on with it
//! and a first code (`POST /auth/v4/self/2fa`). Codes are checked with `totp-rs`; that
//! a code works once is the store's business (it claims the code's time step).
//! The QR code is drawn with `qrcodegen` and encoded with `png`: the few lines that put
//! modules into pixels are all that is written here.

use qrcodegen::{QrCode, QrCodeEcc};
use rand::Rng;
use totp_rs::{Builder, Secret, Totp};

/// Length of a secret in base32 characters, as the spec requires.
pub const SECRET_LEN: usize = 64;

/// Reserve codes made at a time.
pub const RESERVE_CODES: usize = 10;

/// The TOTP of a base32 secret of [`SECRET_LEN`] characters, or why it is not one.
pub fn parse_secret(secret: &str) -> Result<Totp, String> {
    if secret.len() != SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)) {
        return Err(format!("must be {SECRET_LEN} base32 characters (A-Z, 2-7)"));
    }
    let secret = Secret::try_from_base32(secret).map_err(|_| "is not base32".to_owned())?;
    Builder::new().with_secret(secret).build().map_err(|e| e.to_string())
}

/// The time step a 6-digit `code` is valid for at unix time `now`, if any.
pub fn check(totp: &Totp, code: u32, now: u64) -> Option<i64> {
    if code > 999_999 {
        return None;
    }
    totp.check(&format!("{code:06}"), now).and_then(|step| i64::try_from(step).ok())
}

/// A set of fresh reserve codes: 10 characters each from a 32-letter alphabet without
/// look-alikes (50 bits), grouped as `xxxxx-xxxxx`.
pub fn reserve_codes() -> Vec<String> {
    const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789z";
    let mut rng = rand::rng();
    (0..RESERVE_CODES)
        .map(|_| {
            let c: String = (0..10).map(|_| ALPHABET[rng.random_range(0..31)] as char).collect();
            format!("{}-{}", &c[..5], &c[5..])
        })
        .collect()
}

/// How a reserve code is compared: case and separators do not matter.
pub fn normalize_reserve_code(code: &str) -> String {
    code.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// The `otpauth://` URI an authenticator app reads from a QR code.
pub fn otpauth_uri(issuer: &str, name: &str, secret: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    format!("otpauth://totp/{}:{}?secret={secret}&issuer={}", enc(issuer), enc(name), enc(issuer))
}

/// Error correction of a QR code, by the spec's names.
pub fn ecc(recovery: &str) -> Option<QrCodeEcc> {
    Some(match recovery {
        "low" => QrCodeEcc::Low,
        "medium" => QrCodeEcc::Medium,
        "high" => QrCodeEcc::Quartile,
        "highest" => QrCodeEcc::High,
        _ => return None,
    })
}

/// `text` as a QR code in a square grayscale PNG of `size` pixels, with the quiet
/// zone of four modules the standard asks for.
pub fn qr_png(text: &str, size: u32, ecc: QrCodeEcc) -> Result<Vec<u8>, String> {
    let qr = QrCode::encode_text(text, ecc).map_err(|e| e.to_string())?;
    let modules = u32::try_from(qr.size()).map_err(|e| e.to_string())? + 8;
    let scale = (size / modules).max(1);
    let size = size.max(modules);
    let offset = (size - modules * scale) / 2;
    let mut pixels = vec![255u8; (size * size) as usize];
    for y in 0..size {
        for x in 0..size {
            let (mx, my) = ((x.wrapping_sub(offset)) / scale, (y.wrapping_sub(offset)) / scale);
            let dark = x >= offset
                && y >= offset
                && (4..modules - 4).contains(&mx)
                && (4..modules - 4).contains(&my)
                && qr.get_module(mx as i32 - 4, my as i32 - 4);
            if dark {
                pixels[(y * size + x) as usize] = 0;
            }
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, size, size);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| e.to_string())?;
    w.write_image_data(&pixels).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238's SHA-1 test secret ("12345678901234567890") repeated to 40 bytes
    /// is 64 base32 characters; the RFC's vectors for T = 59 and 1111111109 hold
    /// for the first 20 bytes only, so the codes here come from the 40-byte key.
    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn secrets_are_64_base32_characters() {
        assert!(parse_secret(SECRET).is_ok());
        assert!(parse_secret(&SECRET[..32]).is_err());
        assert!(parse_secret(&SECRET.to_lowercase()).is_err());
        assert!(parse_secret(&format!("{}1", &SECRET[..63])).is_err());
    }

    #[test]
    fn a_code_is_valid_for_its_step_and_one_either_side() {
        let t = parse_secret(SECRET).unwrap();
        let now = 1_700_000_000u64;
        let code: u32 = t.generate(now).to_string().parse().unwrap();
        assert_eq!(check(&t, code, now), Some((now / 30) as i64));
        assert_eq!(check(&t, code, now + 30), Some((now / 30) as i64));
        assert_eq!(check(&t, code, now - 30), Some((now / 30) as i64));
        assert_eq!(check(&t, code, now + 90), None);
        assert_eq!(check(&t, 1_000_000, now), None);
    }

    #[test]
    fn reserve_codes_are_distinct_and_normalized() {
        let codes = reserve_codes();
        assert_eq!(codes.len(), RESERVE_CODES);
        let set: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(set.len(), RESERVE_CODES);
        assert_eq!(normalize_reserve_code(" AbCde-FGhjk "), "abcdefghjk");
    }

    #[test]
    fn qr_code_is_a_png_of_the_size_asked() {
        let png = qr_png(&otpauth_uri("dcim", "a@b.c", SECRET), 256, QrCodeEcc::Medium).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let d = png::Decoder::new(std::io::Cursor::new(png));
        let r = d.read_info().unwrap();
        assert_eq!((r.info().width, r.info().height), (256, 256));
    }
}
