#!/usr/bin/env python3
"""A tiny in-memory Confluent Schema Registry, for tests of the avro-confluent format.

Speaks the subset of the REST API that serializers use (Python stdlib only):

  POST /subjects/{subject}/versions   {"schema": "..."} -> {"id": N}
                                      (an identical schema keeps its id; ids are global)
  POST /subjects/{subject}            {"schema": "..."} -> {"subject", "id", "version", "schema"}
                                      or 404 when the subject does not have the schema
  GET  /schemas/ids/{id}              -> {"schema": "..."}           (404 error_code 40403)
  GET  /subjects                      -> ["subject", ...]
  GET  /subjects/{subject}/versions   -> [1, 2, ...]
  GET  /subjects/{subject}/versions/{version|latest}
                                      -> {"subject", "id", "version", "schema"}

Two schemas are identical when their JSON is equal after parsing (whitespace and key
order do not matter). Usage:

  python3 tests/support/schema_registry.py --port 8081 [--host 127.0.0.1] [--user user:password]

With --port 0 the system picks a free port. Once listening, the server prints
`listening on http://HOST:PORT` and then `ready`, each on its own line.
With --user, requests must carry that HTTP basic auth (401 otherwise).
"""

import argparse
import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class Store:
    """Schemas by id and subjects' versions, behind one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ids = {}  # canonical text -> id
        self.schemas = {}  # id -> (schema text as registered, schemaType)
        self.subjects = {}  # subject -> [id of version 1, id of version 2, ...]

    @staticmethod
    def canonical(schema, schema_type):
        try:
            text = json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
        except ValueError:
            text = schema
        return schema_type + ":" + text

    def register(self, subject, schema, schema_type):
        key = self.canonical(schema, schema_type)
        with self.lock:
            schema_id = self.ids.get(key)
            if schema_id is None:
                schema_id = len(self.schemas) + 1
                self.ids[key] = schema_id
                self.schemas[schema_id] = (schema, schema_type)
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def lookup(self, subject, schema, schema_type):
        key = self.canonical(schema, schema_type)
        with self.lock:
            versions = self.subjects.get(subject)
            if versions is None:
                return None, "subject"
            schema_id = self.ids.get(key)
            if schema_id not in versions:
                return None, "schema"
            return (schema_id, versions.index(schema_id) + 1), None


class Handler(BaseHTTPRequestHandler):
    store = None
    auth = None  # expected Authorization header, or None

    def log_message(self, format, *args):  # quiet: tests read stdout
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.answer(status, {"error_code": code, "message": message})

    def authorized(self):
        if self.auth is None or self.headers.get("Authorization") == self.auth:
            return True
        self.error(401, 401, "Unauthorized")
        return False

    def parts(self):
        path = self.path.split("?", 1)[0]
        return [unquote(p) for p in path.strip("/").split("/") if p]

    def read_schema(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None, None
        schema = body.get("schema")
        if not isinstance(schema, str):
            return None, None
        return schema, body.get("schemaType", "AVRO")

    def version_body(self, subject, version, schema_id):
        schema, schema_type = self.store.schemas[schema_id]
        body = {"subject": subject, "version": version, "id": schema_id, "schema": schema}
        if schema_type != "AVRO":
            body["schemaType"] = schema_type
        return body

    def do_POST(self):
        if not self.authorized():
            return
        parts = self.parts()
        if len(parts) not in (2, 3) or parts[0] != "subjects" or (len(parts) == 3 and parts[2] != "versions"):
            return self.error(404, 404, "HTTP 404 Not Found")
        subject = parts[1]
        schema, schema_type = self.read_schema()
        if schema is None:
            return self.error(422, 42201, "Invalid schema")
        if schema_type == "AVRO":
            try:
                json.loads(schema)
            except ValueError:
                return self.error(422, 42201, "Invalid schema")
        if len(parts) == 3:
            return self.answer(200, {"id": self.store.register(subject, schema, schema_type)})
        found, missing = self.store.lookup(subject, schema, schema_type)
        if missing == "subject":
            return self.error(404, 40401, "Subject '%s' not found." % subject)
        if missing == "schema":
            return self.error(404, 40403, "Schema not found")
        schema_id, version = found
        self.answer(200, self.version_body(subject, version, schema_id))

    def do_GET(self):
        if not self.authorized():
            return
        parts = self.parts()
        store = self.store
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"]:
            try:
                schema_id = int(parts[2])
            except ValueError:
                schema_id = -1
            with store.lock:
                found = store.schemas.get(schema_id)
            if found is None:
                return self.error(404, 40403, "Schema %s not found" % parts[2])
            body = {"schema": found[0]}
            if found[1] != "AVRO":
                body["schemaType"] = found[1]
            return self.answer(200, body)
        if parts == ["subjects"]:
            with store.lock:
                return self.answer(200, sorted(store.subjects))
        if len(parts) in (3, 4) and parts[0] == "subjects" and parts[2] == "versions":
            with store.lock:
                versions = list(store.subjects.get(parts[1], []))
            if not versions:
                return self.error(404, 40401, "Subject '%s' not found." % parts[1])
            if len(parts) == 3:
                return self.answer(200, list(range(1, len(versions) + 1)))
            wanted = parts[3]
            if wanted in ("latest", "-1"):
                version = len(versions)
            else:
                try:
                    version = int(wanted)
                except ValueError:
                    return self.error(422, 42202, "Invalid version")
                if not 1 <= version <= len(versions):
                    return self.error(404, 40402, "Version %s not found." % wanted)
            return self.answer(200, self.version_body(parts[1], version, versions[version - 1]))
        self.error(404, 404, "HTTP 404 Not Found")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--user", help="require HTTP basic auth 'user:password'")
    args = parser.parse_args()

    Handler.store = Store()
    if args.user:
        Handler.auth = "Basic " + base64.b64encode(args.user.encode()).decode()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print("listening on http://%s:%d" % (host, port), flush=True)
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
