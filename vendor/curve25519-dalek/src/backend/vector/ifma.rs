// -*- mode: rust; -*-
//
// This file is part of curve25519-dalek.
// Copyright (c) 2018-2019 Henry de Valence
// See LICENSE for licensing information.
//
// Authors:
// - Henry de Valence <hdevalence@hdevalence.ca>

#![doc = include_str!("../../../docs/ifma-notes.md")]

#[allow(missing_docs)]
pub mod field;

#[allow(missing_docs)]
#[cfg(curve25519_dalek_backend = "avx512")]
pub mod edwards;

#[cfg(curve25519_dalek_backend = "avx512")]
pub mod constants;

// Ricochet addition: eight square roots at once, for batch decompression.
#[cfg(feature = "alloc")]
pub(crate) mod pow;

#[cfg(curve25519_dalek_backend = "avx512")]
pub(crate) use self::edwards::{CachedPoint, ExtendedPoint};
