//! What can be wrong with a payload.

/// A payload that cannot be signed as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EthError {
    /// A field is missing, malformed or out of range; the text names the field.
    #[error("{0}")]
    InvalidField(String),
    /// The typed data is not valid EIP-712, or its message does not fit its types.
    #[error("the typed data is not valid EIP-712: {0}")]
    InvalidTypedData(String),
    /// This build cannot compute the payload's digest (EIP-712 without the `eip712` feature).
    #[error("{0} is not supported by this build")]
    Unsupported(&'static str),
}

impl EthError {
    pub(crate) fn field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::InvalidField(format!("{field}: {why}"))
    }
}
