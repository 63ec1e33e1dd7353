//! JSON replies as the tutorial's Flask app sends them, so that the default replies stay byte for
//! byte what a client of the tutorial already parses.

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The content type of every API reply (Flask's `jsonify` sends the same).
pub const JSON: &str = "application/json";

/// A JSON reply serialised as Flask's `jsonify` does: compact, keys in declaration order (the
/// reply types declare them alphabetically, as `jsonify` sorts them), one trailing newline.
pub struct FlaskJson<T>(pub T);

impl<T: Serialize> IntoResponse for FlaskJson<T> {
    fn into_response(self) -> Response {
        let mut text = serde_json::to_vec(&self.0).expect("reply types always serialise");
        text.push(b'\n');
        ([(CONTENT_TYPE, JSON)], text).into_response()
    }
}
