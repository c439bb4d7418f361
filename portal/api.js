// The HTTP API (SPEC 6): bearer token, JSON, problem documents as ApiError.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function createApi(baseUrl, getToken) {
  async function call(method, path, { body, etag, params } = {}) {
    const url = new URL(`${baseUrl}/${path}`);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const headers = { Authorization: `Bearer ${await getToken()}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (etag) headers["If-Match"] = etag;
    let response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new ApiError(0, { title: "network", detail: "" });
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : null;
    if (!response.ok) throw new ApiError(response.status, data || { title: response.statusText, status: response.status });
    return data;
  }
  return {
    get: (path, params) => call("GET", path, { params }),
    put: (path, body, etag) => call("PUT", path, { body, etag }),
    post: (path, body, etag) => call("POST", path, { body, etag }),
  };
}

// A page's answers once the user has moved on are dropped: the promise never settles, so a slow page cannot
// render over the page that replaced it.
export function forNavigation(api, isCurrent) {
  const guard = (method) => async (...args) => {
    let result;
    try {
      result = await method(...args);
    } catch (error) {
      if (!isCurrent()) return new Promise(() => {});
      throw error;
    }
    return isCurrent() ? result : new Promise(() => {});
  };
  return { get: guard(api.get), put: guard(api.put), post: guard(api.post) };
}
