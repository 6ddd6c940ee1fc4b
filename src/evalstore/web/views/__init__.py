"""The data of each dashboard page: one async function per page, over the service.

A view returns plain data (documents as the service returns them, plus chart specs);
the page renders it with its template and `/api/...` returns it as JSON, so the page
and its API never disagree.
"""
