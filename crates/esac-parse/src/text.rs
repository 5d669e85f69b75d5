//! Decoding the bytes of real Essen files, which predate UTF-8.
//!
//! Most files are ASCII with a few DOS code page 850 bytes (`0x81` = ü); a few
//! are Latin-1 (`HAYDN.sm`, `IRL.sm`) and two mix both. Decoding never fails:
//! valid UTF-8 is kept; otherwise a file holding any byte in `0x80..=0x9F`
//! (control codes in Latin-1, letters in CP850) is read as CP850, except that an
//! upper byte which is a letter in Latin-1 but not in CP850 (`0xF6` ö, `0xFC` ü)
//! is read as Latin-1; anything else is read as Latin-1.

/// CP850 characters for bytes `0x80..=0xFF`.
const CP850_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜø£Ø×ƒáíóúñÑªº¿®¬½¼¡«»░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐└┴┬├─┼ãÃ╚╔╩╦╠═╬¤ðÐÊËÈıÍÎÏ┘┌█▄¦Ì▀ÓßÔÒõÕµþÞÚÛÙýÝ¯´\u{ad}±‗¾¶§÷¸°¨·¹³²■\u{a0}";

fn cp850(byte: u8) -> char {
    debug_assert!(byte >= 0x80);
    CP850_HIGH
        .chars()
        .nth(usize::from(byte - 0x80))
        .expect("table covers 0x80..=0xFF")
}

/// Decodes a file's bytes to text, dropping a trailing DOS end-of-file mark (Ctrl-Z).
pub fn decode(bytes: &[u8]) -> String {
    let bytes = match bytes.iter().rposition(|&b| b != 0x1A) {
        Some(last) => &bytes[..=last],
        None => &[],
    };
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    let dos = bytes.iter().any(|b| (0x80..=0x9F).contains(b));
    bytes
        .iter()
        .map(|&b| {
            if b < 0x80 {
                char::from(b)
            } else if dos {
                let c = cp850(b);
                let latin = char::from(b);
                if b >= 0xA0 && !c.is_alphabetic() && c != '\u{a0}' && latin.is_alphabetic() {
                    latin
                } else {
                    c
                }
            } else {
                char::from(b)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_128_entries() {
        assert_eq!(CP850_HIGH.chars().count(), 128);
    }

    #[test]
    fn dos_bytes_decode_as_cp850() {
        assert_eq!(
            decode(b"M\x81ller Stra\xe1e \x84\x94\x1a"),
            "Müller Straße äö"
        );
    }

    #[test]
    fn latin1_file_decodes_as_latin1() {
        assert_eq!(decode(b"Se\xe1n \xf3 Dubh\xe4"), "Seán ó Dubhä");
    }

    #[test]
    fn mixed_file_takes_latin1_letters_where_cp850_has_symbols() {
        // LOT.sm: CP850 ü plus a Latin-1 ö (0xF6 is ÷ in CP850).
        assert_eq!(decode(b"\x81ber sch\xf6n"), "über schön");
    }

    #[test]
    fn utf8_is_kept_and_ctrl_z_dropped() {
        assert_eq!(decode("Grüße\r\n\x1a".as_bytes()), "Grüße\r\n");
    }
}
