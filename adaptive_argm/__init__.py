"""adaptive-argm: restore text-to-music outputs with stem-relevance routing."""
