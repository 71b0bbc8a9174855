//! Exponentiation of four field elements at once (Ricochet addition):
//! the square roots of point decompression, four points at a time.

#![allow(non_snake_case)]

use curve25519_dalek_derive::unsafe_target_feature;

use super::field::{FieldElement2625x4, Lanes};
use crate::backend::serial::u64::field::FieldElement51;

#[unsafe_target_feature("avx2")]
impl FieldElement2625x4 {
    /// Each lane squared `k` times (`k >= 1`).
    #[inline]
    fn pow2k_lanes(&self, k: u32) -> FieldElement2625x4 {
        let mut t = self.square_and_negate_D();
        for _ in 1..k {
            t = t.square_and_negate_D();
        }
        // square_and_negate_D leaves lane D negated: undo it once.
        t.blend(t.negate_lazy(), Lanes::D)
    }

    /// Each lane raised to the power (p-5)/8 = 2^252 - 3, by the addition
    /// chain of the serial `FieldElement::pow_p58`.
    #[rustfmt::skip]
    fn pow_p58_lanes(&self) -> FieldElement2625x4 {
        let x = self;
        let t0 = x.pow2k_lanes(1);
        let t1 = t0.pow2k_lanes(2);
        let t2 = x * &t1;
        let t3 = &t0 * &t2;
        let t4 = t3.pow2k_lanes(1);
        let t5 = &t2 * &t4;
        let t6 = t5.pow2k_lanes(5);
        let t7 = &t6 * &t5;
        let t8 = t7.pow2k_lanes(10);
        let t9 = &t8 * &t7;
        let t10 = t9.pow2k_lanes(20);
        let t11 = &t10 * &t9;
        let t12 = t11.pow2k_lanes(10);
        let t13 = &t12 * &t7;
        let t14 = t13.pow2k_lanes(50);
        let t15 = &t14 * &t13;
        let t16 = t15.pow2k_lanes(100);
        let t17 = &t16 * &t15;
        let t18 = t17.pow2k_lanes(50);
        let t19 = &t18 * &t13;
        let t20 = t19.pow2k_lanes(2);
        x * &t20
    }
}

/// `x^((p-5)/8)` for each of four elements.
#[unsafe_target_feature("avx2")]
pub(crate) fn pow_p58_x4(x: &[FieldElement51; 4]) -> [FieldElement51; 4] {
    FieldElement2625x4::new(&x[0], &x[1], &x[2], &x[3])
        .pow_p58_lanes()
        .split()
}
