//! Connecting a Spotify account: the authorize link (PKCE S256 + `state`), the paste-back of
//! the URL the browser was redirected to, the code exchange, and refreshing. Built on the
//! `oauth2` crate, which does PKCE, state and the token endpoint's error grammar.

use chrono::{Duration, Utc};
use magpie_core::Secret;
use magpie_core::config::SpotifyConfig;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};

use super::{SCOPE, SpotifyError, Tokens};

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn client(config: &SpotifyConfig) -> Result<Client, SpotifyError> {
    let id = config
        .client_id
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            SpotifyError::Config(
                "no client id: create an app at developer.spotify.com and set SPOTIFY_CLIENT_ID"
                    .into(),
            )
        })?;
    let bad = |what: &str, e: url::ParseError| SpotifyError::Config(format!("{what}: {e}"));
    let accounts = config.accounts_url.trim_end_matches('/');
    let mut client = BasicClient::new(ClientId::new(id))
        .set_auth_uri(
            AuthUrl::new(format!("{accounts}/authorize")).map_err(|e| bad("accounts_url", e))?,
        )
        .set_token_uri(
            TokenUrl::new(format!("{accounts}/api/token")).map_err(|e| bad("accounts_url", e))?,
        )
        .set_redirect_uri(
            RedirectUrl::new(config.redirect_uri.clone()).map_err(|e| bad("redirect_uri", e))?,
        );
    if let Some(secret) = &config.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
    }
    Ok(client)
}

/// A connect attempt waiting for the user to come back with the redirect URL.
#[derive(Debug)]
pub struct PendingConnect {
    pub listener: String,
    /// The link the user opens in a browser.
    pub url: String,
    state: String,
    verifier: Secret,
}

impl PendingConnect {
    /// Whether a redirect URL (or its query) carries this attempt's `state`.
    pub fn matches(&self, redirected: &str) -> bool {
        let query = url::Url::parse(redirected.trim())
            .ok()
            .and_then(|u| u.query().map(str::to_string))
            .unwrap_or_else(|| redirected.trim().trim_start_matches('?').to_string());
        url::form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k == "state" && v == self.state.as_str())
    }
}

/// Begin connecting `listener`: the authorize link to show.
pub fn start_connect(
    config: &SpotifyConfig,
    listener: &str,
) -> Result<PendingConnect, SpotifyError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client(config)?
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new(SCOPE.into()))
        .set_pkce_challenge(challenge)
        .url();
    Ok(PendingConnect {
        listener: listener.to_string(),
        url: url.to_string(),
        state: state.secret().clone(),
        verifier: Secret::new(verifier.secret().clone()),
    })
}

/// The `code` of a pasted redirect URL (or of its query string alone).
fn code_from_paste(pending: &PendingConnect, pasted: &str) -> Result<String, SpotifyError> {
    let pasted = pasted.trim();
    let query = match url::Url::parse(pasted) {
        Ok(url) => url.query().unwrap_or_default().to_string(),
        Err(_) => pasted.trim_start_matches('?').to_string(),
    };
    let mut code = None;
    let mut state = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            "error" => return Err(SpotifyError::Denied(v.into_owned())),
            _ => {}
        }
    }
    let code = code.ok_or_else(|| {
        SpotifyError::BadPaste(
            "the pasted text has no `code=`: paste the whole address the browser was sent to \
             (it starts with your redirect URI and fails to load; that is expected)"
                .into(),
        )
    })?;
    if state.as_deref() != Some(pending.state.as_str()) {
        return Err(SpotifyError::StateMismatch);
    }
    Ok(code)
}

fn tokens_from(
    response: &oauth2::basic::BasicTokenResponse,
    previous_refresh: Option<&Secret>,
    authorized_at: chrono::DateTime<Utc>,
) -> Result<Tokens, SpotifyError> {
    let refresh = response
        .refresh_token()
        .map(|r| Secret::new(r.secret().clone()))
        .or_else(|| previous_refresh.cloned())
        .ok_or_else(|| SpotifyError::Denied("Spotify returned no refresh token".into()))?;
    let lifetime = response
        .expires_in()
        .unwrap_or(std::time::Duration::from_secs(3600));
    Ok(Tokens {
        access_token: Secret::new(response.access_token().secret().clone()),
        refresh_token: refresh,
        expires_at: Utc::now() + Duration::from_std(lifetime).unwrap_or(Duration::hours(1)),
        authorized_at,
    })
}

fn token_error(
    error: RequestTokenError<
        oauth2::HttpClientError<reqwest::Error>,
        oauth2::StandardErrorResponse<BasicErrorResponseType>,
    >,
    listener: &str,
) -> SpotifyError {
    match error {
        RequestTokenError::ServerResponse(e)
            if *e.error() == BasicErrorResponseType::InvalidGrant =>
        {
            SpotifyError::ReconnectNeeded(listener.to_string())
        }
        RequestTokenError::ServerResponse(e) => SpotifyError::Denied(e.to_string()),
        RequestTokenError::Request(e) => SpotifyError::Network(e.to_string()),
        other => SpotifyError::Denied(other.to_string()),
    }
}

/// Finish connecting: exchange the pasted redirect URL's code for tokens.
pub async fn finish_connect(
    config: &SpotifyConfig,
    http: &reqwest::Client,
    pending: PendingConnect,
    pasted: &str,
) -> Result<Tokens, SpotifyError> {
    let code = code_from_paste(&pending, pasted)?;
    let response = client(config)?
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.expose().to_string()))
        .request_async(http)
        .await
        .map_err(|e| token_error(e, &pending.listener))?;
    tokens_from(&response, None, Utc::now())
}

/// A fresh access token. Spotify may or may not rotate the refresh token; the six-month
/// lifetime counts from the original authorisation either way.
pub async fn refresh(
    config: &SpotifyConfig,
    http: &reqwest::Client,
    listener: &str,
    tokens: &Tokens,
) -> Result<Tokens, SpotifyError> {
    let response = client(config)?
        .exchange_refresh_token(&RefreshToken::new(
            tokens.refresh_token.expose().to_string(),
        ))
        .request_async(http)
        .await
        .map_err(|e| token_error(e, listener))?;
    tokens_from(&response, Some(&tokens.refresh_token), tokens.authorized_at)
}

/// An app access token by the Client Credentials flow (needs the client secret): enough for
/// the catalogue endpoints that enrichment calls, without a user. Returns the token and how
/// long it lasts.
pub async fn app_token(
    config: &SpotifyConfig,
    http: &reqwest::Client,
) -> Result<(Secret, std::time::Duration), SpotifyError> {
    if config.client_secret.is_none() {
        return Err(SpotifyError::Config(
            "an app token needs the client secret (SPOTIFY_CLIENT_SECRET)".into(),
        ));
    }
    let response = client(config)?
        .exchange_client_credentials()
        .request_async(http)
        .await
        .map_err(|e| token_error(e, "(app)"))?;
    let lasts = response
        .expires_in()
        .unwrap_or(std::time::Duration::from_secs(3600));
    Ok((Secret::new(response.access_token().secret().clone()), lasts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SpotifyConfig {
        SpotifyConfig {
            client_id: Some("abc".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_link_carries_pkce_state_scope_and_redirect() {
        let pending = start_connect(&config(), "ana").unwrap();
        let url = url::Url::parse(&pending.url).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(
            url.as_str().split('?').next().unwrap(),
            "https://accounts.spotify.com/authorize"
        );
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "abc");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], SCOPE);
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:8888/callback");
        assert_eq!(q["state"], pending.state);
    }

    #[test]
    fn pastes_are_read_or_refused_with_the_reason() {
        let pending = start_connect(&config(), "ana").unwrap();
        let ok = format!(
            "http://127.0.0.1:8888/callback?code=XYZ&state={}",
            pending.state
        );
        assert_eq!(code_from_paste(&pending, &ok).unwrap(), "XYZ");
        assert_eq!(
            code_from_paste(&pending, &format!("  ?code=Q&state={} \n", pending.state)).unwrap(),
            "Q"
        );
        assert!(matches!(
            code_from_paste(
                &pending,
                "http://127.0.0.1:8888/callback?code=X&state=other"
            ),
            Err(SpotifyError::StateMismatch)
        ));
        assert!(matches!(
            code_from_paste(
                &pending,
                "http://127.0.0.1:8888/callback?error=access_denied"
            ),
            Err(SpotifyError::Denied(_))
        ));
        assert!(
            code_from_paste(&pending, "hello")
                .unwrap_err()
                .to_string()
                .contains("no `code=`")
        );
        assert!(
            start_connect(&SpotifyConfig::default(), "ana")
                .unwrap_err()
                .to_string()
                .contains("SPOTIFY_CLIENT_ID")
        );
    }
}
