/// Why a registry file could not be read, parsed, validated or changed
/// (the error every reloaded settings file shares).
pub use ricochet_reload::FileError as RegistryError;
