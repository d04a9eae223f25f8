//! The national person identifier: 11 digits, the last a check digit computed with the
//! two-pass modulo-11 scheme used by Estonian and Lithuanian personal codes.

const W1: [u32; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1];
const W2: [u32; 10] = [3, 4, 5, 6, 7, 8, 9, 1, 2, 3];

/// Check digit for the first ten digits (`digits` must hold exactly ten values 0..=9).
pub fn person_id_check_digit(digits: &[u8; 10]) -> u8 {
    let sum = |w: &[u32; 10]| -> u32 {
        digits
            .iter()
            .zip(w)
            .map(|(d, w)| u32::from(*d) * w)
            .sum::<u32>()
            % 11
    };
    let r = sum(&W1);
    if r < 10 {
        return r as u8;
    }
    let r = sum(&W2);
    if r < 10 { r as u8 } else { 0 }
}

/// True when `s` is 11 ASCII digits whose last digit is the correct check digit.
pub fn person_id_is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 11 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut d = [0u8; 10];
    for (i, x) in b[..10].iter().enumerate() {
        d[i] = x - b'0';
    }
    person_id_check_digit(&d) == b[10] - b'0'
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_codes() {
        // A published example of the Estonian scheme.
        assert!(person_id_is_valid("37605030299"));
        assert!(!person_id_is_valid("37605030298"));
        assert!(!person_id_is_valid("3760503029"));
        assert!(!person_id_is_valid("3760503029x"));
    }

    proptest! {
        #[test]
        fn any_single_digit_change_is_detected(base in proptest::array::uniform10(0u8..10), pos in 0usize..10, delta in 1u8..10) {
            let c = person_id_check_digit(&base);
            let mut s: String = base.iter().map(|d| char::from(b'0' + d)).collect();
            s.push(char::from(b'0' + c));
            prop_assert!(person_id_is_valid(&s));
            let mut changed = base;
            changed[pos] = (changed[pos] + delta) % 10;
            // In the first pass every weight is coprime with 11, so a single changed digit always
            // changes the remainder; when both remainders stay below 10 the check digits differ.
            let first = |d: &[u8; 10]| d.iter().zip(W1).map(|(d, w)| u32::from(*d) * w).sum::<u32>() % 11;
            if first(&base) < 10 && first(&changed) < 10 {
                prop_assert_ne!(c, person_id_check_digit(&changed));
            }
        }
    }
}
