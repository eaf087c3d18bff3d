#!/usr/bin/python3
"""Validate recorded Lucid API exchanges against tempest's schemas.

Usage: validate.py RECORDS.jsonl

Each line of RECORDS.jsonl is one exchange the compatibility suite caused
(written by its recording proxy): method, path, query, request body,
status, response headers and body. Every exchange must match a schema:

- a 2xx/3xx /v2.1 (or version root) answer: tempest's compute response
  schema for its route at the microversion the answer states (chosen as
  tempest's service clients choose it), checked with tempest's own
  RestClient.validate_response (status code, body, its jsonschema
  validator and format checkers); a /v2.1 answer must state the
  microversion it served, the same in both headers;
- a 5xx answer is a failure whatever the route;
- a 4xx answer: Nova's error body, {"<kind>": {"code": <status>,
  "message": "..."}} with nothing else;
- a /image answer: Glance v2's image, image list or version list shape
  (tempest has no Glance schema; these are written here from Glance's API
  reference, required keys only);
- an /identity answer: Keystone v3's version documents and token body,
  and its error body {"error": {"code", "message", "title"}} (tempest has
  no identity v3 schemas either; these are from Keystone's API reference,
  required keys only);

and an exchange that matches no route is a failure, so the suite cannot
cause a response nobody checked. Prints one line per failure, then a JSON
summary {"validated": N, "by_schema": {...}, "failures": N}; exits 1 on
any failure.
"""

import json
import re
import sys

import jsonschema
from tempest.lib.api_schema.response.compute.v2_1 import (
    flavors, flavors_extra_specs, images, servers, versions)
from tempest.lib.common import api_version_request, jsonschema_validator, rest_client
from tempest.lib import exceptions
from tempest.lib.services.compute import flavors_client, servers_client

ID = r'[^/]+'

# A versioned schema is chosen as tempest's service clients choose it,
# from their schema_versions_info and the microversion the answer states;
# the others are v2.1's, as tempest uses them at every version.
SERVERS = servers_client.ServersClient.schema_versions_info
FLAVORS = flavors_client.FlavorsClient.schema_versions_info

# (method, path regex, versions or module, schema attribute); the first
# match wins. A POST to /action is resolved by the action key of the
# request body.
ROUTES = [
    ('GET', r'/', versions, 'list_versions'),
    ('GET', r'/v2\.1/?', versions, 'get_one_version'),
    ('POST', r'/v2\.1/servers', servers, 'create_server_with_admin_pass'),
    ('GET', r'/v2\.1/servers', SERVERS, 'list_servers'),
    ('GET', r'/v2\.1/servers/detail', SERVERS, 'list_servers_detail'),
    ('GET', r'/v2\.1/servers/' + ID, SERVERS, 'get_server'),
    ('DELETE', r'/v2\.1/servers/' + ID, servers, 'delete_server'),
    ('POST', r'/v2\.1/servers/' + ID + '/action', None, 'action'),
    ('GET', r'/v2\.1/servers/' + ID + '/os-instance-actions', servers, 'list_instance_actions'),
    ('GET', r'/v2\.1/servers/' + ID + '/os-instance-actions/' + ID, SERVERS, 'show_instance_action'),
    ('GET', r'/v2\.1/flavors', FLAVORS, 'list_flavors'),
    ('GET', r'/v2\.1/flavors/detail', FLAVORS, 'list_flavors_details'),
    ('GET', r'/v2\.1/flavors/' + ID, FLAVORS, 'create_update_get_flavor_details'),
    ('GET', r'/v2\.1/flavors/' + ID + '/os-extra_specs', flavors_extra_specs, 'set_get_flavor_extra_specs'),
    ('GET', r'/v2\.1/images', images, 'list_images'),
    ('GET', r'/v2\.1/images/detail', images, 'list_images_details'),
    ('GET', r'/v2\.1/images/' + ID, images, 'get_image'),
]

ACTIONS = {
    'os-stop': (servers, 'server_actions_common_schema'),
    'os-start': (servers, 'server_actions_common_schema'),
    'reboot': (servers, 'server_actions_common_schema'),
    'resize': (servers, 'server_actions_common_schema'),
    'revertResize': (servers, 'server_actions_common_schema'),
    'confirmResize': (servers, 'server_actions_confirm_resize'),
    'rebuild': (SERVERS, 'rebuild_server_with_admin_pass'),
}


def schema_for(source, attr, version):
    """Returns (name, schema) of attr in source (a module or a
    schema_versions_info) at microversion version."""
    module = source
    if isinstance(source, list):
        v = api_version_request.APIVersionRequest(version)
        module = None
        for item in source:
            if v.matches(api_version_request.APIVersionRequest(item['min']),
                         api_version_request.APIVersionRequest(item['max'])):
                module = item['schema']
                break
        if module is None:
            return None, None
    name = '.'.join(module.__name__.split('.')[-2:]) + '.' + attr
    return name, getattr(module, attr)


NOVA_ERROR = {
    'type': 'object', 'minProperties': 1, 'maxProperties': 1,
    'additionalProperties': {
        'type': 'object',
        'properties': {'code': {'type': 'integer'}, 'message': {'type': 'string'}},
        'required': ['code', 'message'], 'additionalProperties': False,
    },
}

_GLANCE_IMAGE = {
    'type': 'object',
    'properties': {
        'id': {'type': 'string'}, 'name': {'type': ['string', 'null']},
        'status': {'enum': ['queued', 'saving', 'uploading', 'importing', 'active',
                            'killed', 'deleted', 'pending_delete', 'deactivated']},
        'visibility': {'enum': ['public', 'private', 'shared', 'community']},
        'protected': {'type': 'boolean'}, 'os_hidden': {'type': 'boolean'},
        'disk_format': {'type': ['string', 'null']}, 'container_format': {'type': ['string', 'null']},
        'min_ram': {'type': 'integer'}, 'min_disk': {'type': 'integer'},
        'size': {'type': ['integer', 'null']}, 'virtual_size': {'type': ['integer', 'null']},
        'checksum': {'type': ['string', 'null']}, 'owner': {'type': ['string', 'null']},
        'tags': {'type': 'array', 'items': {'type': 'string'}},
        'created_at': {'type': 'string', 'format': 'iso8601-date-time'},
        'updated_at': {'type': 'string', 'format': 'iso8601-date-time'},
        'self': {'type': 'string'}, 'file': {'type': 'string'}, 'schema': {'type': 'string'},
    },
    'required': ['id', 'name', 'status', 'visibility', 'protected', 'disk_format', 'container_format',
                 'min_ram', 'min_disk', 'tags', 'created_at', 'updated_at', 'self', 'file', 'schema'],
}
GLANCE = [
    ('GET', r'/image/?', 'glance.versions', {
        'status_code': [200, 300],
        'response_body': {'type': 'object', 'required': ['versions'], 'properties': {'versions': {
            'type': 'array', 'items': {'type': 'object', 'required': ['id', 'status', 'links']}}}}}),
    ('GET', r'/image/v2/images', 'glance.list_images', {
        'status_code': [200],
        'response_body': {'type': 'object', 'required': ['images', 'first', 'schema'], 'properties': {
            'images': {'type': 'array', 'items': _GLANCE_IMAGE}, 'next': {'type': 'string'},
            'first': {'type': 'string'}, 'schema': {'type': 'string'}}}}),
    ('GET', r'/image/v2/images/' + ID, 'glance.show_image', {'status_code': [200], 'response_body': _GLANCE_IMAGE}),
]

_DOMAIN = {'type': 'object', 'required': ['id', 'name'],
           'properties': {'id': {'type': 'string'}, 'name': {'type': 'string'}}}
_REF = {'type': 'object', 'required': ['id', 'name', 'domain'],
        'properties': {'id': {'type': 'string'}, 'name': {'type': 'string'}, 'domain': _DOMAIN}}
_IDENTITY_VERSION = {'type': 'object', 'required': ['id', 'status', 'links', 'media-types'],
                     'properties': {'id': {'type': 'string', 'pattern': '^v3'},
                                    'status': {'enum': ['stable', 'CURRENT', 'SUPPORTED']},
                                    'links': {'type': 'array', 'minItems': 1}}}
_ENDPOINT = {'type': 'object', 'required': ['id', 'interface', 'region_id', 'url'],
             'properties': {'interface': {'enum': ['public', 'internal', 'admin']}, 'url': {'type': 'string'}}}
_TOKEN = {
    'type': 'object', 'required': ['token'], 'properties': {'token': {
        'type': 'object',
        'required': ['methods', 'user', 'project', 'roles', 'expires_at', 'issued_at', 'audit_ids'],
        'properties': {
            'methods': {'type': 'array', 'items': {'enum': ['password', 'token']}, 'minItems': 1},
            'user': _REF, 'project': _REF,
            'roles': {'type': 'array', 'minItems': 1, 'items': {'type': 'object', 'required': ['id', 'name']}},
            'expires_at': {'type': 'string', 'format': 'iso8601-date-time'},
            'issued_at': {'type': 'string', 'format': 'iso8601-date-time'},
            'catalog': {'type': 'array', 'items': {'type': 'object', 'required': ['type', 'id', 'endpoints'],
                        'properties': {'endpoints': {'type': 'array', 'minItems': 1, 'items': _ENDPOINT}}}},
        }}}}
IDENTITY = [
    ('GET', r'/identity/?', 'keystone.versions', {
        'status_code': [300], 'response_body': {'type': 'object', 'required': ['versions'], 'properties': {
            'versions': {'type': 'object', 'required': ['values'], 'properties': {
                'values': {'type': 'array', 'minItems': 1, 'items': _IDENTITY_VERSION}}}}}}),
    ('GET', r'/identity/v3/?', 'keystone.version', {
        'status_code': [200], 'response_body': {'type': 'object', 'required': ['version'],
                                                'properties': {'version': _IDENTITY_VERSION}}}),
    ('POST', r'/identity/v3/auth/tokens', 'keystone.issue_token', {'status_code': [201], 'response_body': _TOKEN}),
    ('GET', r'/identity/v3/auth/tokens', 'keystone.validate_token', {'status_code': [200], 'response_body': _TOKEN}),
    ('DELETE', r'/identity/v3/auth/tokens', 'keystone.revoke_token', {'status_code': [204]}),
]
KEYSTONE_ERROR = {
    'type': 'object', 'required': ['error'], 'additionalProperties': False, 'properties': {'error': {
        'type': 'object', 'required': ['code', 'message', 'title'], 'additionalProperties': False,
        'properties': {'code': {'type': 'integer'}, 'message': {'type': 'string'}, 'title': {'type': 'string'}}}}}

# A path segment before a /v2.1 collection is a project id, as Nova
# (and novaclient, which puts "v2" there for its Glance lookups) has it.
PROJECT = re.compile(r'^/v2\.1/[^/]+/(servers|flavors|images)(/|$)')


class Resp(dict):
    """What RestClient.validate_response reads of a response."""

    def __init__(self, status, headers):
        super().__init__({k.lower(): v for k, v in headers.items()})
        self.status = status


def route(method, path, version, request_body):
    for m, pattern, source, attr in ROUTES:
        if m == method and re.fullmatch(pattern, path):
            if attr == 'action':
                keys = list(json.loads(request_body or '{}'))
                source, attr = ACTIONS.get(keys[0] if len(keys) == 1 else None, (None, None))
                if source is None:
                    return None, None
            return schema_for(source, attr, version)
    for m, pattern, name, schema in GLANCE + IDENTITY:
        if m == method and re.fullmatch(pattern, path):
            return name, schema
    return None, None


def check(ex):
    """Returns (schema name, None) or (schema name or None, failure)."""
    method, status = ex['method'], ex['status']
    path = PROJECT.sub(r'/v2.1/\1\2', ex['path'])
    headers = {k: ', '.join(v) for k, v in ex['headers'].items()}
    lower = {k.lower(): v for k, v in headers.items()}
    raw = ex['body'].strip()
    try:
        body = json.loads(raw) if raw else None
    except ValueError as e:
        return None, 'body is not JSON (%s): %r' % (e, raw[:200])
    version = '2.1'
    if path == '/v2.1' or path.startswith('/v2.1/'):
        version = lower.get('x-openstack-nova-api-version', '')
        if not re.fullmatch(r'2\.\d+', version) or lower.get('openstack-api-version') != 'compute ' + version:
            return None, 'missing or inconsistent microversion headers: %r' % headers
    if status >= 500 or status < 200:
        return None, 'the suite caused a %d: %r' % (status, raw[:300])
    if 400 <= status < 500 and path.startswith('/identity'):
        try:
            jsonschema.validate(body, KEYSTONE_ERROR, cls=jsonschema_validator.JSONSCHEMA_VALIDATOR)
        except jsonschema.ValidationError as e:
            return 'keystone.error', 'error body: %s' % e.message
        if body['error']['code'] != status:
            return 'keystone.error', 'error body code %r differs from the status %d' % (body, status)
        return 'keystone.error', None
    if 400 <= status < 500:
        try:
            jsonschema.validate(body, NOVA_ERROR, cls=jsonschema_validator.JSONSCHEMA_VALIDATOR)
        except jsonschema.ValidationError as e:
            return 'nova.error', 'error body: %s' % e.message
        if list(body.values())[0]['code'] != status:
            return 'nova.error', 'error body code %r differs from the status %d' % (body, status)
        return 'nova.error', None
    name, schema = route(method, path, version, ex['request_body'])
    if schema is None:
        return None, 'no schema for %s %s -> %d' % (method, path, status)
    try:
        rest_client.RestClient.validate_response(schema, Resp(status, headers), body)
    except (exceptions.InvalidHTTPResponseBody, exceptions.InvalidHttpSuccessCode,
            exceptions.InvalidHTTPResponseHeader) as e:
        return name, str(e)
    return name, None


def main(path):
    by_schema, failures, n = {}, 0, 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            ex = json.loads(line)
            n += 1
            name, failure = check(ex)
            if failure:
                failures += 1
                print('FAIL %s %s%s -> %d [%s]: %s' % (
                    ex['method'], ex['path'], '?' + ex['query'] if ex['query'] else '',
                    ex['status'], name or 'no schema', failure))
            else:
                by_schema[name] = by_schema.get(name, 0) + 1
    print(json.dumps({'validated': n - failures, 'failures': failures, 'by_schema': by_schema}, sort_keys=True))
    return 1 if failures or n == 0 else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
