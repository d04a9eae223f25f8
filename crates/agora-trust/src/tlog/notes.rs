//! Checkpoints as C2SP signed notes, signed by the log's member and cosigned by witnesses
//! (C2SP `tlog-cosignature`).

use std::sync::{Arc, Mutex};

use signed_note::{Note, Signer, Verifier, VerifierList};

use super::{Checkpoint, Hash, TlogError};
use crate::keys::MemberKey;

/// Signs checkpoints as a signed note, with a member's Ed25519 key under the log's name
/// (its origin, e.g. `agora-demo/tax-office`).
struct KeySigner<'a> {
    name: &'a str,
    key: &'a MemberKey,
}

/// The `signed-note` key id of an Ed25519 key under `name`.
fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let encoded = [&[0x01_u8][..], public].concat();
    signed_note::key_id(name, &encoded)
}

impl Signer for KeySigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        key_id(self.name, &self.key.public())
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_vec())
    }
}

/// Verifies a log's checkpoints with its member's public key.
struct KeyVerifier {
    name: String,
    public: [u8; 32],
}

impl Verifier for KeyVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        key_id(&self.name, &self.public)
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        crate::keys::verify_signature(&self.public, msg, sig).is_ok()
    }
}

/// The signed note of a checkpoint of the log `origin`: `size` entries with `root`.
pub fn sign_checkpoint(
    origin: &str,
    size: u64,
    root: Hash,
    key: &MemberKey,
) -> Result<Vec<u8>, TlogError> {
    sign_checkpoint_with(origin, size, root, "", key)
}

/// The signed note of a checkpoint with extension lines (`extension`: each line ending in
/// a newline, such as [`super::SubjectLine::to_extension`]).
pub fn sign_checkpoint_with(
    origin: &str,
    size: u64,
    root: Hash,
    extension: &str,
    key: &MemberKey,
) -> Result<Vec<u8>, TlogError> {
    let checkpoint = Checkpoint::new(origin, size, root, extension).map_err(|_| {
        TlogError::Checkpoint(format!(
            "{origin:?} is not a usable log name, or its extension lines are malformed"
        ))
    })?;
    let mut note =
        Note::new(&checkpoint.to_bytes(), &[]).map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    note.add_sigs(&[&KeySigner { name: origin, key }])
        .map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    Ok(note.to_bytes())
}

/// Opens a signed checkpoint of the log `origin`: its signature by `public` verifies, and
/// its text is a checkpoint of that log.
pub fn open_checkpoint(
    note: &[u8],
    origin: &str,
    public: &[u8; 32],
) -> Result<Checkpoint, TlogError> {
    let note = Note::from_bytes(note).map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    let verifiers = VerifierList::new(vec![Box::new(KeyVerifier {
        name: origin.to_owned(),
        public: *public,
    })]);
    note.verify(&verifiers)
        .map_err(|_| TlogError::Signature(origin.to_owned()))?;
    let checkpoint = Checkpoint::from_bytes(note.text())
        .map_err(|_| TlogError::Checkpoint("the signed text is not a checkpoint".into()))?;
    if checkpoint.origin() != origin {
        return Err(TlogError::Checkpoint(format!(
            "it is a checkpoint of {:?}, not of {origin:?}",
            checkpoint.origin()
        )));
    }
    Ok(checkpoint)
}

/// A witness's cosignature on a checkpoint, in the C2SP `tlog-cosignature` format
/// (version 1): the witness signs `cosignature/v1\ntime T\n` followed by the checkpoint,
/// and the note signature holds T (8 bytes, big-endian) and the Ed25519 signature.
struct CosignatureSigner<'a> {
    name: &'a str,
    key: &'a MemberKey,
    time: u64,
}

fn cosignature_key_id(name: &str, public: &[u8; 32]) -> u32 {
    let encoded = [&[0x04_u8][..], public].concat();
    signed_note::key_id(name, &encoded)
}

fn cosigned_message(time: u64, text: &[u8]) -> Vec<u8> {
    let mut msg = format!("cosignature/v1\ntime {time}\n").into_bytes();
    msg.extend_from_slice(text);
    msg
}

impl Signer for CosignatureSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        cosignature_key_id(self.name, &self.key.public())
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        let mut out = self.time.to_be_bytes().to_vec();
        out.extend_from_slice(&self.key.sign(&cosigned_message(self.time, msg)));
        Ok(out)
    }
}

struct CosignatureVerifier {
    name: String,
    public: [u8; 32],
    /// The time the verified cosignature carries.
    time: Arc<Mutex<Option<u64>>>,
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        cosignature_key_id(&self.name, &self.public)
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 8 + 64 {
            return false;
        }
        let time = u64::from_be_bytes(sig[..8].try_into().expect("8 bytes"));
        let ok =
            crate::keys::verify_signature(&self.public, &cosigned_message(time, msg), &sig[8..])
                .is_ok();
        if ok {
            *self.time.lock().expect("lock") = Some(time);
        }
        ok
    }
}

/// Adds a witness's cosignature (named `witness`, made at `time` in seconds since the
/// epoch) to a signed checkpoint.
pub fn cosign_checkpoint(
    note: &[u8],
    witness: &str,
    key: &MemberKey,
    time: u64,
) -> Result<Vec<u8>, TlogError> {
    let mut note = Note::from_bytes(note).map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    note.add_sigs(&[&CosignatureSigner {
        name: witness,
        key,
        time,
    }])
    .map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    Ok(note.to_bytes())
}

/// Checks that a checkpoint carries a valid cosignature of `witness` (key `public`);
/// returns the time it was made.
pub fn check_cosignature(note: &[u8], witness: &str, public: &[u8; 32]) -> Result<u64, TlogError> {
    let note = Note::from_bytes(note).map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    let time = Arc::new(Mutex::new(None));
    let verifier = CosignatureVerifier {
        name: witness.to_owned(),
        public: *public,
        time: time.clone(),
    };
    let list = VerifierList::new(vec![Box::new(verifier)]);
    note.verify(&list)
        .map_err(|_| TlogError::Signature(format!("the witness {witness}")))?;
    let time = *time.lock().expect("lock");
    time.ok_or_else(|| TlogError::Signature(format!("the witness {witness}")))
}

/// What a checkpoint says (origin, size, root), before any signature on it is checked:
/// to learn which log it is of and which keys to check it with.
pub fn read_checkpoint(note: &[u8]) -> Result<Checkpoint, TlogError> {
    let note = Note::from_bytes(note).map_err(|e| TlogError::Checkpoint(e.to_string()))?;
    Checkpoint::from_bytes(note.text())
        .map_err(|_| TlogError::Checkpoint("the signed text is not a checkpoint".into()))
}
