//! Keyed pseudonyms: HMAC-SHA256 of a value's text under an agreement's linkage key, in
//! lower-case hex, computed by a function that is not in the session's registry (so no SQL
//! can call it with a key of its choosing).

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature};

/// A secret key for pseudonyms, scoped to one linkage purpose and consumer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LinkageKey([u8; 32]);

impl LinkageKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The pseudonym of one value's text.
    pub fn pseudonym(&self, value: &str) -> String {
        Pseudonymizer::new(self).pseudonym(value)
    }
}

impl fmt::Debug for LinkageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkageKey(…)")
    }
}

/// HMAC-SHA256 with the key schedule computed once: the inner and outer hash states after
/// the padded key are kept, so each pseudonym costs the two compression rounds of its own
/// (RustCrypto's `hmac` over `sha2`, which uses the CPU's SHA extensions where present).
#[derive(Clone)]
pub struct Pseudonymizer(hmac::Hmac<sha2::Sha256>);

impl Pseudonymizer {
    pub fn new(key: &LinkageKey) -> Self {
        use hmac::Mac;
        Self(
            <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key.0)
                .expect("HMAC takes keys of any length"),
        )
    }

    /// Lower-case hex of HMAC-SHA256(key, value).
    pub fn pseudonym(&self, value: &str) -> String {
        let mut out = [0u8; 64];
        self.write(value, &mut out);
        // Hex digits are ASCII.
        String::from_utf8_lossy(&out).into_owned()
    }

    fn write(&self, value: &str, out: &mut [u8; 64]) {
        use hmac::Mac;
        let mut mac = self.0.clone();
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        hex::encode_to_slice(tag, out).expect("64 hex digits for 32 bytes");
    }

    /// Pseudonyms of a column of strings (nulls stay null).
    pub fn column(&self, values: &arrow::array::StringArray) -> ArrayRef {
        let mut builder = StringBuilder::with_capacity(values.len(), values.len() * 64);
        let mut buf = [0u8; 64];
        for v in values.iter() {
            match v {
                Some(v) => {
                    self.write(v, &mut buf);
                    builder.append_value(std::str::from_utf8(&buf).expect("hex is ASCII"));
                }
                None => builder.append_null(),
            }
        }
        Arc::new(builder.finish())
    }
}

/// The SQL-invisible pseudonym function.
#[derive(Debug)]
pub(super) struct PseudonymUdf {
    pub(super) key: LinkageKey,
    pub(super) signature: Signature,
}

impl PartialEq for PseudonymUdf {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for PseudonymUdf {}
impl std::hash::Hash for PseudonymUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

impl ScalarUDFImpl for PseudonymUdf {
    fn name(&self) -> &str {
        "agora_pseudonym"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let p = Pseudonymizer::new(&self.key);
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "agora_pseudonym takes one argument".into(),
            ));
        };
        let array = arg.to_array(args.number_rows)?;
        let array = arrow::compute::cast(&array, &DataType::Utf8)?;
        let strings = array
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .ok_or_else(|| DataFusionError::Internal("pseudonym input is not text".into()))?;
        Ok(ColumnarValue::Array(p.column(strings)))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A test key: bytes `first`, `first + 1`, ….
    pub(in crate::enforce) fn key(first: u8) -> LinkageKey {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = first + i as u8;
        }
        LinkageKey::new(k)
    }

    #[test]
    fn pseudonyms_are_hmac_sha256_in_lower_hex() {
        // Expected values from Python's hmac module (an independent implementation).
        assert_eq!(
            key(0).pseudonym("P00000001"),
            "fa44fc0c01626a90eb117fd6b24d1aac29a50318ef5f838d008f1080fe9edb17"
        );
        assert_eq!(
            key(1).pseudonym("P00000001"),
            "0c5be02298669889cf100aebde9d7f62bc369a67c27ef93fa83c5871c92143a0"
        );
    }

    #[test]
    fn pseudonyms_of_a_column_keep_nulls_and_match_one_by_one() {
        let p = Pseudonymizer::new(&key(0));
        let values = arrow::array::StringArray::from(vec![Some("P00000001"), None, Some("")]);
        let out = p.column(&values);
        let out = out
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(out.value(0), p.pseudonym("P00000001"));
        assert!(out.is_null(1));
        assert_eq!(out.value(2), p.pseudonym(""));
    }
}
