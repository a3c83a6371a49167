//! The backup string a person types or pastes (`BackupString::decode`): never a panic, and a
//! string it accepts encodes to the canonical form, which reads back to the same backup.
//! First byte even: the rest is the text. Odd: the rest is the string's content (version and
//! body), made into a string with a checksum that holds (`BackupString::text_of`), so that the
//! fuzzer reaches the body's decoder behind the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_mpc::BackupString;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = if selector % 2 == 0 {
        match std::str::from_utf8(rest) {
            Ok(text) => text.to_owned(),
            Err(_) => return,
        }
    } else {
        BackupString::text_of(rest).to_string()
    };
    if let Ok(backup) = BackupString::decode(&text) {
        let once = backup.encode().expect("a decoded backup encodes");
        let again = BackupString::decode(&once).expect("an encoded backup decodes");
        assert_eq!(*again.encode().expect("a decoded backup encodes"), *once);
        assert_eq!(again.context().pairing_id, backup.context().pairing_id);
    }
});
