/* tokenhint: the table of actionable messages (see tokenhint.h). Invariant: one row per
 * reason and kind family; the first matching row wins, so kind-specific rows come first. */
#include "tokenhint.h"

#include <stddef.h>
#include <string.h>

/* Which credential kinds a row applies to. */
enum fam { ANY, SECRET, CERT, FED, MI };

static const struct {
    const char *reason;
    enum fam fam;
    const char *text;
} rows[] = {
    { "unreachable", MI,
      "No answer from the managed identity endpoint (managed_identity.endpoint, default the "
      "link-local IMDS, or IDENTITY_ENDPOINT): run fogate on an Azure VM, AKS node, App "
      "Service or Container App with a managed identity enabled, and let it reach that "
      "endpoint." },
    { "unreachable", ANY,
      "No answer from the token endpoint: check token_endpoint, DNS and any proxy or firewall "
      "between fogate and login.microsoftonline.com." },
    { "credential", MI,
      "The managed identity settings cannot be used: IDENTITY_ENDPOINT and IDENTITY_HEADER "
      "must be set together (App Service, Container Apps) or both be unset (IMDS); see the "
      "error detail." },
    { "credential", ANY,
      "The credential cannot be loaded: fix the file or environment variable named in the "
      "error detail, then reload." },
    { "assertion_unreadable", ANY,
      "The federated token file (client_assertion_file) is missing, unreadable or not a JWT: "
      "on AKS label the pod azure.workload.identity/use=true, run it under a service account "
      "annotated azure.workload.identity/client-id, and set client_assertion_file to the path "
      "in AZURE_FEDERATED_TOKEN_FILE." },
    { "assertion_expired", ANY,
      "The federated token in client_assertion_file has expired and nobody replaced it: "
      "point client_assertion_file at the projected service account token the kubelet "
      "rotates (AZURE_FEDERATED_TOKEN_FILE), not at a copy." },
    { "assertion_time_range", ANY,
      "Entra says the federated assertion is not within its valid time range "
      "(AADSTS700024): the token file holds an expired token, or a clock is wrong; check time "
      "sync and that the kubelet rotates the file." },
    { "no_federation", ANY,
      "Entra found no federated identity credential matching the assertion (AADSTS70021): on "
      "the app registration (or user-assigned identity) add one whose issuer is the cluster's "
      "OIDC issuer URL, subject system:serviceaccount:<namespace>:<service account> and "
      "audience api://AzureADTokenExchange." },
    { "identity_not_found", ANY,
      "The managed identity endpoint knows no such identity: assign the user-assigned "
      "identity named by managed_identity.client_id to this VM or app, or enable the "
      "system-assigned identity and omit client_id." },
    { "wrong_secret", SECRET,
      "Entra refused the client secret (AADSTS7000215): put the secret's value, not its ID, "
      "in the file or variable." },
    { "wrong_secret", CERT,
      "Entra refused the signed client assertion (AADSTS700027): upload this certificate to "
      "the app registration, or fix cert_file/key_file." },
    { "wrong_secret", FED,
      "Entra refused the federated assertion (AADSTS700027): its signature does not verify "
      "with the issuer's published keys (wrong issuer, or keys rotated without the OIDC "
      "discovery document being updated)." },
    { "wrong_secret", ANY, "The token endpoint refused the client credentials." },
    { "expired_secret", ANY,
      "The client secret has expired (AADSTS7000222): create a new secret on the app "
      "registration and update the file or variable, or move to a secretless credential." },
    { "unknown_app", ANY,
      "No application with this client_id in the tenant (AADSTS700016): check client_id and "
      "tenant." },
    { "unknown_tenant", ANY, "The tenant does not exist (AADSTS90002): check tenant." },
    { "invalid_scope", ANY,
      "Entra refused the scope (AADSTS70011): base_url must be the environment's URL." },
    { "invalid_resource", ANY,
      "Entra does not know the resource (AADSTS500011): base_url must be the environment's "
      "URL, e.g. https://contoso.operations.dynamics.com." },
    { "consent", ANY,
      "Consent is missing for this app and resource (AADSTS65001): grant admin consent, and "
      "check the base_url." },
    { "throttled", ANY, "The token endpoint is throttling (429): fogate backs off and "
      "retries." },
    { "unavailable", ANY,
      "The token endpoint is unavailable (5xx, or IMDS updating): fogate retries." },
    { "malformed", ANY,
      "The answer is not a token response: check that token_endpoint (or the managed "
      "identity endpoint) points at Entra ID (or IMDS)." },
    { "short_lifetime", ANY,
      "The token issued expires within tokens.safety_margin_s: lower the margin or raise "
      "the token lifetime policy." },
    { "internal", ANY, "fogate could not build the request (out of memory?): see the log." },
    { "other", ANY, "The token endpoint refused the request: see error and aadsts in the "
      "log." },
};

static enum fam fam_of(enum conf_credential kind)
{
    switch (kind) {
    case CONF_CRED_SECRET_FILE:
    case CONF_CRED_SECRET_ENV: return SECRET;
    case CONF_CRED_CERTIFICATE: return CERT;
    case CONF_CRED_ASSERTION_FILE: return FED;
    case CONF_CRED_MANAGED_IDENTITY: return MI;
    }
    return ANY;
}

const char *tokenhint_text(const char *reason, enum conf_credential kind)
{
    enum fam f = fam_of(kind);

    for (size_t i = 0; reason && i < sizeof(rows) / sizeof(rows[0]); i++)
        if ((rows[i].fam == ANY || rows[i].fam == f) && strcmp(rows[i].reason, reason) == 0)
            return rows[i].text;
    return NULL;
}
