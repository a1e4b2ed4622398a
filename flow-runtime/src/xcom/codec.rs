//! The one place that turns values into stored bytes and back.
//!
//! Stored XCom is bincode (2.x, through serde, standard configuration). Keeping the codec
//! here makes a later move to another format a one-file change.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value that could not be encoded or decoded, with the codec's reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

/// Encodes a value to bytes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| CodecError(e.to_string()))
}

/// Decodes bytes produced by [`encode`] for the same type; trailing bytes are an error,
/// since they mean the bytes were written for a different type.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) =
        bincode::serde::decode_from_slice::<T, _>(bytes, bincode::config::standard())
            .map_err(|e| CodecError(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError(format!(
            "{} trailing bytes after the value; it was written for a different type",
            bytes.len() - read
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_another_type() {
        let bytes = encode(&(7_u64, "seven".to_string())).unwrap();
        assert_eq!(
            decode::<(u64, String)>(&bytes).unwrap(),
            (7, "seven".into())
        );
        assert!(decode::<u8>(&bytes).is_err());
        assert!(decode::<(u64, String, u64)>(&bytes).is_err());
    }
}
