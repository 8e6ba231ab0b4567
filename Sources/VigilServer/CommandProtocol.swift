import FoundationEssentials
import NIOCore

/// The seed's request/response protocol:
/// `{"requestID": 7, "command": "x"}` → `{"requestID": 7, "success": true, "result": "command 'x' processed"}`.
/// Anything else earns `{"requestID": null, "success": false, "error": "<why>"}`, and the
/// connection stays open.
enum CommandProtocol {
    /// A request id is echoed back as it came: a JSON number or string.
    enum RequestID: Codable, Hashable, Sendable {
        case integer(Int64)
        case number(Double)
        case string(String)

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Int64.self) {
                self = .integer(value)
            } else if let value = try? container.decode(Double.self) {
                self = .number(value)
            } else if let value = try? container.decode(String.self) {
                self = .string(value)
            } else {
                throw DecodingError.typeMismatch(
                    RequestID.self,
                    .init(codingPath: container.codingPath, debugDescription: "requestID must be a number or a string"))
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .integer(let value): try container.encode(value)
            case .number(let value): try container.encode(value)
            case .string(let value): try container.encode(value)
            }
        }
    }

    struct Request: Decodable {
        var requestID: RequestID
        var command: String
    }

    /// The response; `requestID` is encoded as `null` when unknown.
    struct Response: Encodable {
        var requestID: RequestID?
        var success: Bool
        var result: String?
        var error: String?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(requestID, forKey: .requestID)
            try container.encode(success, forKey: .success)
            try container.encodeIfPresent(result, forKey: .result)
            try container.encodeIfPresent(error, forKey: .error)
        }

        enum CodingKeys: String, CodingKey {
            case requestID, success, result, error
        }
    }

    /// Only the id, for error replies to requests whose other parts are wrong.
    private struct IDOnly: Decodable {
        var requestID: RequestID
    }

    static func reply(to data: ByteBuffer) -> [UInt8] {
        let bytes = Data(data.readableBytesView)
        let decoder = JSONDecoder()
        let response: Response
        do {
            let request = try decoder.decode(Request.self, from: bytes)
            response = Response(
                requestID: request.requestID, success: true, result: "command '\(request.command)' processed")
        } catch {
            let id = try? decoder.decode(IDOnly.self, from: bytes).requestID
            response = Response(requestID: id, success: false, error: explain(error))
        }
        // Encoding these plain values cannot fail.
        return Array((try? JSONEncoder().encode(response)) ?? Data(#"{"requestID":null,"success":false}"#.utf8))
    }

    /// A short reason for the client, naming the missing or wrong field.
    static func explain(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _):
            return "missing \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty:
            return "expected a JSON object"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let field = context.codingPath.first?.stringValue ?? "value"
            return field == "requestID" ? "requestID must be a number or a string" : "\"\(field)\" must be a string"
        default:
            return "not valid JSON"
        }
    }
}
