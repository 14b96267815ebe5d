//! Page sizes and opaque page tokens for list RPCs (AIP-158).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use crate::error::{ApiError, Violations, checked};

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

/// The token of a cursor made of ids (one for a list ordered by id, two for one ordered by a pair).
pub fn id_token(ids: &[uuid::Uuid]) -> String {
    encode_token(
        &ids.iter()
            .map(uuid::Uuid::to_string)
            .collect::<Vec<_>>()
            .join("|"),
    )
}

/// Decodes a token made by [`id_token`] with `N` ids; empty means the first page, anything else
/// is INVALID_ARGUMENT naming `page_token`.
pub fn id_cursor<const N: usize>(token: &str) -> Result<Option<[uuid::Uuid; N]>, ApiError> {
    let Some(text) = decode_token(token)? else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("page_token", "is not a token returned by this RPC");
    let ids: Vec<uuid::Uuid> = text
        .split('|')
        .map(|part| uuid::Uuid::try_parse(part).map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    ids.try_into().map(Some).map_err(|_| bad())
}

/// The page of `size` items out of `items` (fetched with one more than `size`), and the cursor of
/// the next page when there is one.
pub fn page<T, K>(mut items: Vec<T>, size: u32, key: impl Fn(&T) -> K) -> (Vec<T>, Option<K>) {
    if items.len() > size as usize {
        items.truncate(size as usize);
        let next = items.last().map(&key);
        (items, next)
    } else {
        (items, None)
    }
}

/// A page of results of a list ordered by id, and the id after which the next page starts.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Uuid>,
}

/// The page size and cursor of a request for a list ordered by id: both checked, violations
/// named `page_size` and `page_token`.
pub fn page_request(page_size: i32, page_token: &str) -> Result<(u32, Option<Uuid>), ApiError> {
    let mut v = Violations::default();
    let size = v.take("page_size", self::page_size(page_size));
    let after = v.take("page_token", id_cursor::<1>(page_token));
    let (size, after) = checked(v, size.zip(after))?;
    Ok((size, after.map(|[id]| id)))
}

/// The [`Page`] of `size` items out of `items` fetched with one more than `size`.
pub fn page_of<T>(items: Vec<T>, size: u32, id: impl Fn(&T) -> Uuid) -> Page<T> {
    let (items, next) = page(items, size, id);
    Page { items, next }
}

/// The page token of the next page of a list ordered by id, empty on the last.
pub fn next_token(next: Option<Uuid>) -> String {
    next.map(|id| id_token(&[id])).unwrap_or_default()
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

    #[test]
    fn id_cursors() {
        let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        assert_eq!(id_cursor::<2>(&id_token(&[a, b])).unwrap(), Some([a, b]));
        assert_eq!(id_cursor::<1>(&id_token(&[a])).unwrap(), Some([a]));
        assert_eq!(id_cursor::<1>("").unwrap(), None);
        assert!(id_cursor::<1>(&id_token(&[a, b])).is_err(), "wrong arity");
        assert!(id_cursor::<1>(&encode_token("not-a-uuid")).is_err());
        let (items, next) = page(vec![1, 2, 3], 2, |i| *i);
        assert_eq!((items, next), (vec![1, 2], Some(2)));
        let (items, next) = page(vec![1, 2], 2, |i| *i);
        assert_eq!((items, next), (vec![1, 2], None));
    }

    #[test]
    fn id_pages() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(page_request(0, "").unwrap(), (DEFAULT_PAGE_SIZE, None));
        assert_eq!(page_request(2, &next_token(Some(a))).unwrap(), (2, Some(a)));
        match page_request(-1, "***") {
            Err(ApiError::InvalidArgument(list)) => {
                let fields: Vec<&str> = list.iter().map(|(f, _)| f.as_str()).collect();
                assert_eq!(fields, ["page_size", "page_token"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(page_request(1, &id_token(&[a, b])).is_err(), "wrong arity");
        let full = page_of(vec![a, b, c], 2, |id| *id);
        assert_eq!((full.items, full.next), (vec![a, b], Some(b)));
        let last = page_of(vec![a], 2, |id| *id);
        assert_eq!((last.items, last.next), (vec![a], None));
        assert_eq!(next_token(None), "");
        assert_eq!(id_cursor::<1>(&next_token(Some(c))).unwrap(), Some([c]));
    }
}
