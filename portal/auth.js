// Sign-in with MSAL.js (authorization code flow with PKCE). Everything that differs between the local identity
// provider and Entra ID is in config.json's `msal` (authority, knownAuthorities, …), never here.
/* global msal */

export async function createAuth(config) {
  const options = structuredClone(config.msal);
  const home = new URL("./", window.location.href).href;
  options.auth.redirectUri = options.auth.redirectUri || home;
  options.auth.postLogoutRedirectUri = options.auth.postLogoutRedirectUri || home;
  const client = new msal.PublicClientApplication(options);
  await client.initialize();
  // The portal routes with the hash (#/overview); it keeps its own return route in `state`.
  const result = await client.handleRedirectPromise({ navigateToLoginRequestUrl: false });
  if (result && result.account) client.setActiveAccount(result.account);
  const account = client.getActiveAccount() || client.getAllAccounts()[0] || null;
  if (account) client.setActiveAccount(account);
  const request = { scopes: config.apiScopes };

  return {
    account,
    returnTo: result && result.state ? result.state : null,
    signIn(route) {
      return client.loginRedirect({ ...request, state: route || "#/" });
    },
    signOut() {
      return client.logoutRedirect({ account: client.getActiveAccount() });
    },
    async token() {
      const active = client.getActiveAccount();
      if (!active) throw new Error("not signed in");
      try {
        return (await client.acquireTokenSilent({ ...request, account: active })).accessToken;
      } catch (error) {
        if (error instanceof msal.InteractionRequiredAuthError) {
          await client.acquireTokenRedirect({ ...request, state: window.location.hash });
        }
        throw error;
      }
    },
  };
}
