//! Exponentiation of eight field elements at once with AVX-512 IFMA, two
//! vectors of four in lockstep (Ricochet addition: batch decompression).

use curve25519_dalek_derive::unsafe_target_feature;

use super::field::{F51x4Reduced, F51x4Unreduced};
use crate::backend::serial::u64::field::FieldElement51;

/// Two vectors of four lanes, computed in lockstep.
type P = (F51x4Reduced, F51x4Reduced);

/// Each lane squared `k` times (`k >= 1`).
#[unsafe_target_feature("avx512ifma,avx512vl")]
#[inline]
fn pow2k2(x: &P, k: u32) -> P {
    let mut t = (
        F51x4Reduced::from(x.0.square()),
        F51x4Reduced::from(x.1.square()),
    );
    for _ in 1..k {
        t = (
            F51x4Reduced::from(t.0.square()),
            F51x4Reduced::from(t.1.square()),
        );
    }
    t
}

/// Lane by lane products.
#[unsafe_target_feature("avx512ifma,avx512vl")]
#[inline]
fn mul2(a: &P, b: &P) -> P {
    (
        F51x4Reduced::from(&a.0 * &b.0),
        F51x4Reduced::from(&a.1 * &b.1),
    )
}

/// `x^((p-5)/8)` for each of eight elements, two vectors in lockstep.
#[unsafe_target_feature("avx512ifma,avx512vl")]
pub(crate) fn pow_p58_x8(x: &[FieldElement51; 8]) -> [FieldElement51; 8] {
    let x = (
        F51x4Reduced::from(F51x4Unreduced::new(&x[0], &x[1], &x[2], &x[3])),
        F51x4Reduced::from(F51x4Unreduced::new(&x[4], &x[5], &x[6], &x[7])),
    );
    let t0 = pow2k2(&x, 1);
    let t1 = pow2k2(&t0, 2);
    let t2 = mul2(&x, &t1);
    let t3 = mul2(&t0, &t2);
    let t4 = pow2k2(&t3, 1);
    let t5 = mul2(&t2, &t4);
    let t6 = pow2k2(&t5, 5);
    let t7 = mul2(&t6, &t5);
    let t8 = pow2k2(&t7, 10);
    let t9 = mul2(&t8, &t7);
    let t10 = pow2k2(&t9, 20);
    let t11 = mul2(&t10, &t9);
    let t12 = pow2k2(&t11, 10);
    let t13 = mul2(&t12, &t7);
    let t14 = pow2k2(&t13, 50);
    let t15 = mul2(&t14, &t13);
    let t16 = pow2k2(&t15, 100);
    let t17 = mul2(&t16, &t15);
    let t18 = pow2k2(&t17, 50);
    let t19 = mul2(&t18, &t13);
    let t20 = pow2k2(&t19, 2);
    let r = mul2(&x, &t20);
    let a = F51x4Unreduced::from(r.0).split();
    let b = F51x4Unreduced::from(r.1).split();
    [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
}
