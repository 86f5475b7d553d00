//! The API's one error type and its code table.
//!
//! Every failure a client can see has a stable snake_case [`ErrorCode`], an HTTP status and a
//! message in Japanese and English, all declared once in the [`error_codes!`] table below;
//! adding a code is adding one line there. An [`ApiError`] is a code plus optional `details`
//! (any JSON) and, for logs only, the underlying cause. On the wire every error is
//! `{"code": "...", "message": {"ja": "...", "en": "..."}, "details": <json or null>}`.

use std::fmt;

use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A text in both UI languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Msg {
    pub ja: String,
    pub en: String,
}

impl Msg {
    /// A message from its Japanese and English text.
    pub fn new(ja: impl Into<String>, en: impl Into<String>) -> Self {
        Self {
            ja: ja.into(),
            en: en.into(),
        }
    }
}

/// One row of the code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorSpec {
    /// Stable machine-readable code; never renamed once released.
    pub code: &'static str,
    pub status: StatusCode,
    pub ja: &'static str,
    pub en: &'static str,
}

/// Declares [`ErrorCode`], its [`ErrorSpec`]s and [`ERROR_CODES`] from one table.
macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal, $status:ident, $ja:literal, $en:literal; )+) => {
        /// Every error a client can receive.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant, )+
        }

        impl ErrorCode {
            /// This code's row of the table.
            pub const fn spec(self) -> &'static ErrorSpec {
                match self {
                    $( ErrorCode::$variant => &ErrorSpec {
                        code: $code,
                        status: StatusCode::$status,
                        ja: $ja,
                        en: $en,
                    }, )+
                }
            }
        }

        /// The whole table, in declaration order (for documentation and listings).
        pub const ERROR_CODES: &[ErrorSpec] = &[ $( *ErrorCode::$variant.spec(), )+ ];
    };
}

error_codes! {
    /// A request the server cannot interpret (malformed headers, bad form bodies, …).
    BadRequest = "bad_request", BAD_REQUEST,
        "リクエストの形式が正しくありません。", "The request is not valid.";
    /// The body is not syntactically valid JSON.
    MalformedJson = "malformed_json", BAD_REQUEST,
        "リクエスト本文のJSONが正しくありません。", "The request body is not valid JSON.";
    /// A path segment or query parameter does not parse.
    InvalidParameter = "invalid_parameter", BAD_REQUEST,
        "URLのパラメータが正しくありません。", "A path or query parameter is not valid.";
    /// No valid token was presented (missing, malformed, expired, revoked, or the user is gone).
    Unauthenticated = "unauthenticated", UNAUTHORIZED,
        "サインインが必要です。", "Sign-in is required.";
    /// Sign-in failed; deliberately the same whether or not the login exists.
    InvalidCredentials = "invalid_credentials", UNAUTHORIZED,
        "ログインIDまたはパスワードが正しくありません。", "The login or password is incorrect.";
    /// Authenticated, but not allowed to do this.
    Forbidden = "forbidden", FORBIDDEN,
        "この操作を行う権限がありません。", "You are not allowed to do this.";
    /// A change through the API authenticated only by the browser's session cookie: the API
    /// takes writes with the bearer token (the web UI's own forms carry their CSRF token).
    CookieCannotWrite = "session_cookie_cannot_write", FORBIDDEN,
        "ブラウザのセッションCookieではAPIを通じた変更はできません。トークンをAuthorizationヘッダーで送ってください。",
        "A browser session cookie cannot change data through the API; send the token in the Authorization header.";
    /// No such route or resource.
    NotFound = "not_found", NOT_FOUND,
        "対象が見つかりません。", "Not found.";
    /// The route exists but not for this HTTP method.
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED,
        "このURLではそのメソッドを使用できません。", "This HTTP method is not allowed on this URL.";
    /// The request conflicts with stored data (for example a login that is taken).
    Conflict = "conflict", CONFLICT,
        "既存のデータと競合しています。", "This conflicts with existing data.";
    /// Optimistic locking: someone else changed the record first.
    StaleVersion = "stale_version", CONFLICT,
        "他の利用者が先に更新しました。最新の内容を読み込んでからやり直してください。",
        "Someone else changed this first; reload it and try again.";
    /// The body exceeds the size limit.
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE,
        "リクエスト本文が大きすぎます。", "The request body is too large.";
    /// The body is not declared as JSON.
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE,
        "Content-Type を application/json にしてください。", "The Content-Type must be application/json.";
    /// Well-formed, but some fields are wrong; `details` lists `{field, reason: {ja, en}}`.
    ValidationFailed = "validation_failed", UNPROCESSABLE_ENTITY,
        "入力内容に誤りがあります。", "Some fields are not valid.";
    /// Too many attempts; `details.retry_after_seconds` says when to try again.
    RateLimited = "rate_limited", TOO_MANY_REQUESTS,
        "試行回数が多すぎます。しばらく待ってからやり直してください。",
        "Too many attempts; wait a while and try again.";
    /// No workflow definition with that id is loaded.
    UnknownWorkflow = "unknown_workflow", NOT_FOUND,
        "そのワークフローはありません。", "There is no such workflow.";
    /// The workflow has no event of that name; `details.known` lists its events.
    UnknownEvent = "unknown_event", BAD_REQUEST,
        "そのイベントはこのワークフローにありません。", "The workflow has no such event.";
    /// The event does not apply in the instance's current state.
    EventNotApplicable = "event_not_applicable", CONFLICT,
        "この操作は現在の状態では実行できません。", "This action does not apply in the current state.";
    /// The actor may not fire the event (role, organisation, four-eyes, deputyship);
    /// `details.unmet` lists every reason.
    TransitionForbidden = "transition_forbidden", FORBIDDEN,
        "この操作を行う権限がありません。", "You may not take this action.";
    /// Requirements are unmet; `details.unmet` lists every one, with its guard.
    TransitionRejected = "transition_rejected", UNPROCESSABLE_ENTITY,
        "要件を満たしていないため実行できません。", "Requirements are not met.";
    /// The event's parameters are wrong (an unknown step, a missing absent approver, …).
    InvalidEventInput = "invalid_event_input", UNPROCESSABLE_ENTITY,
        "操作の指定に誤りがあります。", "The action's parameters are not valid.";
    /// Someone else changed the instance at the same moment; nothing was written.
    ConcurrentUpdate = "concurrent_update", CONFLICT,
        "他の利用者が同時に更新しました。最新の内容を読み込んでからやり直してください。",
        "Someone else changed this at the same moment; reload it and try again.";
    /// A correction must name a decided instance of the same workflow.
    NotCorrectable = "not_correctable", CONFLICT,
        "この案件は訂正の対象にできません。", "This instance cannot be corrected.";
    /// Instances of this workflow are started through the domain API (`details.use`).
    ManagedWorkflow = "managed_workflow", CONFLICT,
        "このワークフローの案件は専用の画面・APIから作成してください。",
        "Instances of this workflow are started through its own API.";
    /// An uploaded file is not a PDF, PNG or JPEG by its content.
    UnsupportedFileType = "unsupported_file_type", UNSUPPORTED_MEDIA_TYPE,
        "PDF・PNG・JPEGのファイルのみ登録できます。", "Only PDF, PNG and JPEG files are accepted.";
    /// Anything unexpected; the cause is logged, never sent.
    Internal = "internal", INTERNAL_SERVER_ERROR,
        "サーバー内部でエラーが発生しました。", "An internal error occurred.";
    /// The server is overloaded or shutting down.
    ServiceUnavailable = "service_unavailable", SERVICE_UNAVAILABLE,
        "現在サービスを利用できません。", "The service is unavailable.";
    /// Readiness: the database does not answer.
    DatabaseUnavailable = "database_unavailable", SERVICE_UNAVAILABLE,
        "データベースに接続できません。", "The database does not answer.";
    /// Readiness: the schema is behind (or ahead of) this build.
    MigrationsPending = "migrations_pending", SERVICE_UNAVAILABLE,
        "データベースのマイグレーションが適用されていません。", "Database migrations are pending.";
}

impl ErrorCode {
    /// The stable snake_case code.
    pub const fn as_str(self) -> &'static str {
        self.spec().code
    }
}

/// One invalid field, as listed in the `details` of `validation_failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field's name (a dotted path for nested fields).
    pub field: String,
    pub reason: Msg,
}

impl FieldError {
    /// An invalid field with its reason in both languages.
    pub fn new(field: impl Into<String>, ja: impl Into<String>, en: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: Msg::new(ja, en),
        }
    }
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error as the API reports it: a code, optional details, and a cause kept for the logs.
pub struct ApiError {
    code: ErrorCode,
    details: Option<Value>,
    cause: Option<Cause>,
    retry_after_seconds: Option<u64>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            details: None,
            cause: None,
            retry_after_seconds: None,
        }
    }

    /// An opaque 500; `cause` and its chain go to the log only.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self::new(ErrorCode::Internal).with_cause(cause)
    }

    /// A 422 listing every invalid field.
    pub fn validation(fields: Vec<FieldError>) -> Self {
        Self::new(ErrorCode::ValidationFailed).with_details(fields)
    }

    /// A 422 for one invalid field.
    pub fn invalid_field(field: &str, ja: &str, en: &str) -> Self {
        Self::validation(vec![FieldError::new(field, ja, en)])
    }

    /// A 429 that tells the client (body and `Retry-After`) when to try again.
    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        let mut error = Self::new(ErrorCode::RateLimited)
            .with_details(serde_json::json!({ "retry_after_seconds": retry_after_seconds }));
        error.retry_after_seconds = Some(retry_after_seconds);
        error
    }

    /// Attaches machine-readable details (anything serialisable to JSON).
    pub fn with_details(mut self, details: impl Serialize) -> Self {
        self.details = match serde_json::to_value(details) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(%error, "error details could not be serialised; sending null");
                None
            }
        };
        self
    }

    /// Keeps the underlying cause for the log (never sent to the client).
    pub fn with_cause(mut self, cause: impl Into<Cause>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The details sent to the client, if any.
    pub fn details(&self) -> Option<&Value> {
        self.details.as_ref()
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::internal(error)
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        Self::internal(error)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.code.spec().en)
    }
}

/// Debug is what the request log prints (tracing-actix-web logs errors with `{:?}`), so it
/// carries the details and the whole cause chain.
impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        if let Some(details) = &self.details {
            write!(f, " details={details}")?;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> =
            self.cause.as_deref().map(|c| c as _);
        while let Some(current) = cause {
            write!(f, "\n  caused by: {current}")?;
            cause = current.source();
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as _)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'static str,
    message: MsgRef,
    details: &'a Option<Value>,
}

#[derive(Serialize)]
struct MsgRef {
    ja: &'static str,
    en: &'static str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.spec().status
    }

    fn error_response(&self) -> HttpResponse {
        let spec = self.code.spec();
        let mut response = HttpResponse::build(spec.status);
        if let Some(seconds) = self.retry_after_seconds {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(ErrorBody {
            code: spec.code,
            message: MsgRef {
                ja: spec.ja,
                en: spec.en,
            },
            details: &self.details,
        })
    }
}

/// `JsonConfig` error handler: every body problem in the API's error shape.
pub fn json_error_handler(error: JsonPayloadError, _request: &HttpRequest) -> actix_web::Error {
    let api_error = match &error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge)
        }
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::new(ErrorCode::PayloadTooLarge)
        }
        JsonPayloadError::ContentType => ApiError::new(ErrorCode::UnsupportedMediaType),
        JsonPayloadError::Deserialize(inner) if inner.is_data() => {
            ApiError::validation(vec![field_error_from_serde(&inner.to_string())])
        }
        JsonPayloadError::Deserialize(inner) => ApiError::new(ErrorCode::MalformedJson)
            .with_details(serde_json::json!({ "line": inner.line(), "column": inner.column() })),
        _ => ApiError::new(ErrorCode::BadRequest),
    };
    api_error.with_cause(error.to_string()).into()
}

/// `PathConfig` error handler.
pub fn path_error_handler(error: PathError, _request: &HttpRequest) -> actix_web::Error {
    invalid_parameter(error.to_string()).into()
}

/// `QueryConfig` error handler.
pub fn query_error_handler(error: QueryPayloadError, _request: &HttpRequest) -> actix_web::Error {
    invalid_parameter(error.to_string()).into()
}

fn invalid_parameter(reason: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter)
        .with_details(serde_json::json!({ "reason": reason }))
        .with_cause(reason)
}

/// Turns serde's data error ("missing field `login` at line 1 column 2") into a field error.
fn field_error_from_serde(message: &str) -> FieldError {
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"))
        .unwrap_or("body");
    let (ja, en) = if message.starts_with("missing field") {
        (
            "必須項目です。".to_owned(),
            "This field is required.".to_owned(),
        )
    } else if message.starts_with("unknown field") {
        (
            "この項目は受け付けられません。".to_owned(),
            "This field is not accepted.".to_owned(),
        )
    } else {
        (
            format!("値の型が正しくありません（{message}）。"),
            message.to_owned(),
        )
    };
    FieldError::new(field, ja, en)
}

/// The default service: unknown routes answer `not_found` in the API's error shape.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound))
}

/// `ErrorHandlers` fallback: any error response that did not come from an [`ApiError`]
/// (actix's own 405 for a known path, its 413/400 from other extractors, …) is rewritten into
/// the API's error shape, so clients only ever see one shape.
pub fn reshape_foreign_error<B>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let ours = response
        .response()
        .error()
        .is_some_and(|error| error.as_error::<ApiError>().is_some());
    // The web UI's error pages (`routes::ui`) are HTML in their final shape already.
    let page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if ours || page {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let code = match response.status() {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
        status if status.is_client_error() => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let (request, _) = response.into_parts();
    let mut reshaped = ApiError::new(code).error_response();
    if let Some(allow) = allow {
        reshaped.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, reshaped).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_unique_and_snake_case() {
        let mut seen = HashSet::new();
        for spec in ERROR_CODES {
            assert!(seen.insert(spec.code), "duplicate code {}", spec.code);
            assert!(
                spec.code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{} is not snake_case",
                spec.code
            );
            assert!(!spec.ja.is_empty() && !spec.en.is_empty());
        }
    }

    #[test]
    fn the_readme_documents_every_code() {
        let readme = include_str!("../README.md");
        for spec in ERROR_CODES {
            assert!(
                readme.contains(&format!("`{}`", spec.code)),
                "README.md does not list `{}`",
                spec.code
            );
        }
    }

    #[test]
    fn debug_output_carries_the_cause_chain() {
        let io = std::io::Error::other("disk on fire");
        let error = ApiError::internal(io);
        let printed = format!("{error:?}");
        assert!(printed.starts_with("internal:"), "{printed}");
        assert!(printed.contains("caused by: disk on fire"), "{printed}");
    }

    async fn body_of(error: actix_web::Error) -> (StatusCode, Value) {
        let response = error.error_response();
        let status = response.status();
        let bytes = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[actix_web::test]
    async fn bad_path_and_query_parameters_are_invalid_parameter() {
        use serde::de::Error as _;
        let request = actix_web::test::TestRequest::default().to_http_request();
        let path = PathError::Deserialize(serde::de::value::Error::custom("not a uuid"));
        let query =
            QueryPayloadError::Deserialize(serde::de::value::Error::custom("missing `page`"));
        for error in [
            path_error_handler(path, &request),
            query_error_handler(query, &request),
        ] {
            let (status, body) = body_of(error).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(body["code"], "invalid_parameter");
            assert!(body["details"]["reason"].is_string(), "{body}");
        }
    }

    #[actix_web::test]
    async fn an_error_body_has_code_both_messages_and_details() {
        let error = ApiError::invalid_field("login", "必須項目です。", "This field is required.");
        let (status, body) = body_of(error.into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            serde_json::json!({
                "code": "validation_failed",
                "message": { "ja": "入力内容に誤りがあります。", "en": "Some fields are not valid." },
                "details": [{ "field": "login", "reason": { "ja": "必須項目です。", "en": "This field is required." } }],
            })
        );
        let (_, body) =
            body_of(ApiError::internal(std::io::Error::other("secret path /etc/x")).into()).await;
        assert_eq!(body["details"], Value::Null);
        assert!(
            !body.to_string().contains("secret path"),
            "a 500 must not leak its cause"
        );
    }

    #[test]
    fn serde_data_errors_name_the_field() {
        let missing = field_error_from_serde("missing field `login` at line 1 column 2");
        assert_eq!(missing.field, "login");
        let unknown =
            field_error_from_serde("unknown field `admin`, expected `login` or `password`");
        assert_eq!(unknown.field, "admin");
        let wrong_type = field_error_from_serde("invalid type: integer `1`, expected a string");
        assert_eq!(wrong_type.field, "body");
    }
}
