//! The list algebra of dynamic task mapping, on encoded values: how many instances a set
//! of mapped lists expands to, which element each instance takes, and splitting and
//! joining encoded lists without decoding their elements.

use crate::xcom::codec::{self, CodecError};
use crate::xcom::{XComBlob, XComValue};

/// How several mapped arguments combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MapMode {
    /// Every combination; the last argument varies fastest.
    #[default]
    Product,
    /// The i-th element of every list; as long as the shortest list.
    Zip,
}

/// The number of instances `lengths` (one per mapped argument) expand to.
pub fn expansion_length(lengths: &[usize], mode: MapMode) -> usize {
    match mode {
        MapMode::Product => lengths.iter().try_fold(1_usize, |n, &l| n.checked_mul(l)),
        MapMode::Zip => lengths.iter().copied().min(),
    }
    .unwrap_or(if lengths.is_empty() { 0 } else { usize::MAX })
}

/// For instance `map_index`, the element each mapped argument takes.
pub fn element_positions(map_index: usize, lengths: &[usize], mode: MapMode) -> Vec<usize> {
    match mode {
        MapMode::Zip => vec![map_index; lengths.len()],
        MapMode::Product => {
            let mut rest = map_index;
            let mut positions = vec![0; lengths.len()];
            for (position, &length) in positions.iter_mut().zip(lengths).rev() {
                *position = rest % length.max(1);
                rest /= length.max(1);
            }
            positions
        }
    }
}

/// The encoding of a `Vec<T>` made of encoded `T`s, without decoding them: bincode writes
/// a sequence as its length then its elements.
pub fn collect(elements: &[XComBlob], element_type: &str) -> Result<XComBlob, CodecError> {
    let mut bytes = codec::encode(&(elements.len() as u64))?;
    bytes.reserve(elements.iter().map(|e| e.bytes().len()).sum());
    for element in elements {
        bytes.extend_from_slice(element.bytes());
    }
    Ok(XComBlob::from_parts(
        bytes,
        format!("alloc::vec::Vec<{element_type}>"),
    ))
}

/// Splits an encoded `Vec<T>` into encoded `T`s (the elements of a mapped argument).
pub(crate) fn split<T: XComValue>(list: &XComBlob) -> Result<Vec<XComBlob>, CodecError> {
    list.decode::<Vec<T>>()?
        .iter()
        .map(XComBlob::encode)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collected_blobs_decode_as_a_vec() {
        for n in [0_usize, 1, 250, 251, 70_000] {
            let values: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
            let blobs: Vec<XComBlob> = values
                .iter()
                .map(|v| XComBlob::encode(v).unwrap())
                .collect();
            let joined = collect(&blobs, std::any::type_name::<String>()).unwrap();
            assert_eq!(joined.decode::<Vec<String>>().unwrap(), values);
            assert_eq!(joined.type_name(), std::any::type_name::<Vec<String>>());
            assert_eq!(joined, XComBlob::encode(&values).unwrap());
        }
    }

    #[test]
    fn split_is_the_inverse_of_collect() {
        let list = XComBlob::encode(&vec![3_u32, 1, 2]).unwrap();
        let parts = split::<u32>(&list).unwrap();
        assert_eq!(
            parts
                .iter()
                .map(|p| p.decode::<u32>().unwrap())
                .collect::<Vec<_>>(),
            [3, 1, 2]
        );
        assert_eq!(collect(&parts, "u32").unwrap().bytes(), list.bytes());
        assert!(split::<u32>(&XComBlob::encode(&5_u8).unwrap()).is_err());
    }

    #[test]
    fn products_vary_the_last_argument_fastest() {
        let lengths = [2, 3];
        assert_eq!(expansion_length(&lengths, MapMode::Product), 6);
        let all: Vec<Vec<usize>> = (0..6)
            .map(|i| element_positions(i, &lengths, MapMode::Product))
            .collect();
        assert_eq!(
            all,
            [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]].map(Vec::from)
        );
        assert_eq!(expansion_length(&[2, 0], MapMode::Product), 0);
        assert_eq!(
            expansion_length(&[usize::MAX, 2], MapMode::Product),
            usize::MAX
        );
    }

    #[test]
    fn zips_stop_at_the_shortest_list() {
        assert_eq!(expansion_length(&[4, 2, 3], MapMode::Zip), 2);
        assert_eq!(element_positions(1, &[4, 2, 3], MapMode::Zip), [1, 1, 1]);
        assert_eq!(expansion_length(&[], MapMode::Zip), 0);
    }
}
