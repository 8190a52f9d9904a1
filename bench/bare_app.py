"""The intake baseline: a Flask app that reads the body and answers 202, nothing else."""
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/hooks/forms/<key>")
def receive(key: str):
    request.get_data()
    response = jsonify({"status": "accepted"})
    response.status_code = 202
    return response
