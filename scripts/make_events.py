#!/usr/bin/env python3
"""Write the sample Lambda events in events/ (for `sam local invoke -e` and `cargo lambda invoke --data-file`).

    python3 scripts/make_events.py [IMAGE]      # default IMAGE: ../shared/samples/kitten.jpg

One event per front door of template.yaml (REST API, HTTP API, Function URL) and for an ALB
target group, for `POST /predict` with IMAGE as a base64 multipart body (as API
Gateway delivers it when multipart/form-data is a binary media type), one `GET /`, and bad
requests named `bad-<status>-…` with the status each must get. Each front door's events carry
what its default authentication in template.yaml adds: the REST API's the API key (header
`x-api-key`, `requestContext.identity.apiKey` and `apiKeyId`), the HTTP API's and the Function
URL's the SigV4 headers and the IAM caller (`requestContext.authorizer.iam`). Events that carry
IMAGE's bytes (`predict-*.json`) are not committed: this script makes them from whatever image
you give it.
Standard library only; the output is deterministic.
"""
import base64
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "events")
BOUNDARY = "------------------------d74496d66958873e"
ACCOUNT = "123456789012"
TIME = ("25/Nov/2026:12:00:00 +0000", 1795608000000)
# The REST API's key (RestApiAuth=ApiKey, the default): API Gateway makes 40-character values.
API_KEY = ("k3yV4lu3000000000000000000000000000000ab", "a1b2c3d4e5")
# The IAM caller of the HTTP API and the Function URL (HttpApiAuth=Iam, FunctionUrlAuth=Iam).
IAM_CALLER = {"accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": ACCOUNT, "callerId": "AIDAEXAMPLEUSERID0001",
              "cognitoIdentity": None, "principalOrgId": None,
              "userArn": f"arn:aws:iam::{ACCOUNT}:user/densenet-client", "userId": "AIDAEXAMPLEUSERID0001"}


def multipart(field, filename, data, content_type="image/jpeg"):
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def is_text(content_type):
    """API Gateway passes these bodies as text; binary media types (multipart, images) as base64."""
    return (content_type or "").startswith(("application/json", "text/"))


def headers(content_type, length):
    h = {"accept": "*/*", "host": "example.com", "user-agent": "curl/8.5.0",
         "x-forwarded-for": "203.0.113.7", "x-forwarded-port": "443", "x-forwarded-proto": "https"}
    if content_type:
        h["content-type"] = content_type
        h["content-length"] = str(length)
    return h


def sigv4_headers(h, service):
    """What a SigV4-signed request (HttpApiAuth=Iam, FunctionUrlAuth=Iam) adds to the headers."""
    h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={IAM_CALLER['accessKey']}/20261125/us-east-1/{service}/aws4_request, "
                          "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
    h["x-amz-date"] = "20261125T120000Z"


def rest_v1(method, path, body=None, content_type=None, stage="Prod"):
    """API Gateway REST API (payload v1) proxy event, as template.yaml's REST API sends it: its
    resources are `/` and `/{proxy+}`, any method, and each asks for the API key."""
    h = headers(content_type, len(body or b""))
    h["x-api-key"] = API_KEY[0]
    resource = "/" if path == "/" else "/{proxy+}"
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": h, "multiValueHeaders": {k: [v] for k, v in h.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None if path == "/" else {"proxy": path.lstrip("/")}, "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "abc123defg", "resourceId": "r3s0urc3", "stage": stage,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "extendedRequestId": "BQGojGf6oAMFXhw=",
            "resourcePath": resource, "httpMethod": method, "path": f"/{stage}{path}", "protocol": "HTTP/1.1",
            "requestTime": TIME[0], "requestTimeEpoch": TIME[1],
            "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123defg",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0", "accountId": None,
                         "apiKey": API_KEY[0], "apiKeyId": API_KEY[1],
                         "caller": None, "user": None, "userArn": None, "accessKey": None,
                         "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                         "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None},
        },
        "body": base64.b64encode(body).decode() if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def http_v2(method, path, body=None, content_type=None, function_url=False):
    """API Gateway HTTP API (payload v2) event, as template.yaml's HTTP API sends it (one
    `$default` route and stage, AWS_IAM), or the same shape as its Function URL (AWS_IAM) sends it."""
    domain = ("abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws" if function_url
              else "abc123defg.execute-api.us-east-1.amazonaws.com")
    route = "$default"
    h = headers(content_type, len(body or b""))
    h["host"] = domain
    sigv4_headers(h, "lambda" if function_url else "execute-api")
    event = {
        "version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": "",
        "headers": h,
        "requestContext": {
            # A signed Function URL request names the caller's account (a public one: "anonymous").
            "accountId": ACCOUNT, "apiId": domain.split(".")[0],
            "authorizer": {"iam": dict(IAM_CALLER)},
            "domainName": domain, "domainPrefix": domain.split(".")[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "routeKey": route, "stage": "$default",
            "time": TIME[0], "timeEpoch": TIME[1],
        },
        "isBase64Encoded": body is not None and not is_text(content_type),
    }
    if body is not None:
        event["body"] = body.decode() if is_text(content_type) else base64.b64encode(body).decode()
    return event


def alb(method, path, body=None, content_type=None):
    """Application Load Balancer target-group event."""
    return {
        "requestContext": {"elb": {"targetGroupArn": f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:targetgroup/densenet/0123456789abcdef"}},
        "httpMethod": method, "path": path, "queryStringParameters": {},
        "headers": headers(content_type, len(body or b"")),
        "body": base64.b64encode(body).decode() if body is not None else "",
        "isBase64Encoded": body is not None,
    }


def main():
    image_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "samples", "kitten.jpg")
    with open(image_path, "rb") as f:
        image = f.read()
    name = os.path.basename(image_path)
    form = f"multipart/form-data; boundary={BOUNDARY}"
    upload = multipart("file", name, image)
    events = {
        # Answered with the prediction for IMAGE (not committed: they carry its bytes).
        "predict-apigw-rest.json": rest_v1("POST", "/predict", upload, form),
        "predict-apigw-http.json": http_v2("POST", "/predict", upload, form),
        "predict-function-url.json": http_v2("POST", "/predict", upload, form, function_url=True),
        "predict-alb.json": alb("POST", "/predict", upload, form),
        # Answered with the tutorial's greeting.
        "get-root-apigw-rest.json": rest_v1("GET", "/"),
        "get-root-apigw-http.json": http_v2("GET", "/"),
        "get-root-function-url.json": http_v2("GET", "/", function_url=True),
        # Bad requests: the status each must get is in the name.
        "bad-400-no-file-field-apigw-rest.json": rest_v1("POST", "/predict", multipart("image", "x.jpg", b"\xff\xd8\xff"), form),
        "bad-415-not-an-image-apigw-http.json": http_v2("POST", "/predict", multipart("file", "notes.txt", b"just some text\n", "text/plain"), form),
        "bad-415-json-body-function-url.json": http_v2("POST", "/predict", b'{"file": "kitten.jpg"}', "application/json", function_url=True),
        "bad-405-get-predict-alb.json": alb("GET", "/predict"),
        "bad-404-unknown-route-apigw-rest.json": rest_v1("GET", "/nope"),
    }
    os.makedirs(OUT, exist_ok=True)
    for file_name, event in events.items():
        with open(os.path.join(OUT, file_name), "w") as f:
            json.dump(event, f, indent=2)
            f.write("\n")
    print(f"wrote {len(events)} events to {OUT} (image: {image_path}, {len(image)} bytes)")


if __name__ == "__main__":
    main()
