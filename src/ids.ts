/** Session ids and tenant names: safe as a path segment, a store key and a URL segment. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
