"""The HTTP client integrations (httpx, aiohttp, requests); the public modules re-export them."""
