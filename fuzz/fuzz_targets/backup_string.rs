//! The backup string a person types or pastes (`BackupString::decode`): never a panic, and a
//! string it accepts encodes to the canonical form, which reads back to the same backup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use waas_mpc::BackupString;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(backup) = BackupString::decode(text) {
        let once = backup.encode().expect("a decoded backup encodes");
        let again = BackupString::decode(&once).expect("an encoded backup decodes");
        assert_eq!(*again.encode().expect("a decoded backup encodes"), *once);
        assert_eq!(again.context().pairing_id, backup.context().pairing_id);
    }
});
