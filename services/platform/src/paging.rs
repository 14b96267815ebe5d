//! Page sizes and opaque page tokens for list RPCs (AIP-158).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::ApiError;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 100;

/// 0 means the default; negative is invalid; above the maximum is clamped.
pub fn page_size(requested: i32) -> Result<u32, ApiError> {
    match requested {
        n if n < 0 => Err(ApiError::invalid("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as u32).min(MAX_PAGE_SIZE)),
    }
}

/// Encodes a cursor (an ordered key) as an opaque token.
pub fn encode_token(cursor: &str) -> String {
    URL_SAFE_NO_PAD.encode(cursor.as_bytes())
}

/// Decodes a token made by [`encode_token`]; empty means the first page.
pub fn decode_token(token: &str) -> Result<Option<String>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| ApiError::invalid("page_token", "is not a token returned by this RPC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_tokens() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(1000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
        assert_eq!(
            decode_token(&encode_token("a|b")).unwrap().as_deref(),
            Some("a|b")
        );
        assert_eq!(decode_token("").unwrap(), None);
        assert!(decode_token("***").is_err());
    }
}
