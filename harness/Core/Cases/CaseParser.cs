using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// Reads case-format.md version 1. Never throws on bad input: every problem is a
/// <see cref="CaseError"/> (<c>FILE:LINE:COLUMN: message</c>), all of a file's errors are
/// collected (up to <see cref="CaseLimits.MaxErrors"/>), and any error rejects the whole file.
/// </summary>
/// <remarks>
/// Memory stays bounded on hostile input: the file and line lengths are checked before anything
/// is copied, lines are scanned in place, and the step count is capped.
/// </remarks>
public static class CaseParser
{
    private const string VersionWord = "eptcase";

    /// <summary>Parses UTF-8 bytes; invalid UTF-8 is a located error. A leading byte-order mark is skipped.</summary>
    public static ParseResult Parse(ReadOnlySpan<byte> utf8, string fileName)
    {
        if (utf8.Length > CaseLimits.MaxFileLength)
        {
            return TooLarge(fileName, utf8.Length, "bytes");
        }

        if (utf8.StartsWith("\uFEFF"u8))
        {
            utf8 = utf8[3..];
        }

        char[] buffer = new char[utf8.Length];
        OperationStatus status = Utf8.ToUtf16(utf8, buffer, out int read, out int written, replaceInvalidSequences: false);
        if (status != OperationStatus.Done)
        {
            return InvalidUtf8(fileName, utf8, read);
        }

        return Parse(new string(buffer, 0, written), fileName);
    }

    public static ParseResult Parse(string text, string fileName)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(fileName);
        if (text.Length > CaseLimits.MaxFileLength)
        {
            return TooLarge(fileName, text.Length, "characters");
        }

        var errors = new ErrorSink(fileName);
        var reader = new LineParser(text, errors);
        List<Step> steps = reader.ReadAll();
        if (errors.Count == 0)
        {
            CaseRules.Check(steps, errors);
        }

        return errors.Count > 0
            ? ParseResult.Failure(errors.Errors)
            : ParseResult.Success(new EptCase(steps, reader.HeaderComments, fileName));
    }

    private static ParseResult TooLarge(string fileName, int length, string unit) => ParseResult.Failure(
    [
        new CaseError(fileName, 1, 1, $"file too large: {length} {unit}, the limit is {CaseLimits.MaxFileLength} (cases are small)"),
    ]);

    private static ParseResult InvalidUtf8(string fileName, ReadOnlySpan<byte> utf8, int offset)
    {
        ReadOnlySpan<byte> before = utf8[..offset];
        int lineStart = before.LastIndexOf((byte)'\n') + 1;
        int line = before.Count((byte)'\n') + 1;
        int column = Encoding.UTF8.GetCharCount(before[lineStart..]) + 1;
        return ParseResult.Failure([new CaseError(fileName, line, column, $"invalid UTF-8 (byte 0x{utf8[offset]:x2}); a case is UTF-8 text")]);
    }

    /// <summary>The line-by-line reader of one file.</summary>
    private sealed class LineParser
    {
        private readonly string text;
        private readonly ErrorSink errors;
        private readonly List<(int Start, int Length)> tokens = new(16);
        private readonly List<(int Start, int Length)> expectationTokens = new(8);
        private readonly List<Step> steps = [];
        private bool versionSeen;
        private bool stop;

        public LineParser(string text, ErrorSink errors)
        {
            this.text = text;
            this.errors = errors;
        }

        public List<string> HeaderComments { get; } = [];

        public List<Step> ReadAll()
        {
            int lineNumber = 0;
            int position = text.Length > 0 && text[0] == '\uFEFF' ? 1 : 0;
            while (position < text.Length && !stop && !errors.IsFull)
            {
                lineNumber++;
                int newline = text.IndexOf('\n', position);
                int end = newline < 0 ? text.Length : newline;
                int contentEnd = end > position && text[end - 1] == '\r' ? end - 1 : end;
                ReadLine(lineNumber, position, contentEnd);
                position = newline < 0 ? text.Length : newline + 1;
            }

            if (!versionSeen && !stop && !errors.IsFull)
            {
                errors.Report(Math.Max(1, lineNumber), 1, "missing the version line eptcase 1 (the first line that is not a comment)");
            }

            return steps;
        }

        private void ReadLine(int lineNumber, int start, int end)
        {
            if (end - start > CaseLimits.MaxLineLength)
            {
                errors.Report(lineNumber, CaseLimits.MaxLineLength + 1, $"line longer than {CaseLimits.MaxLineLength} characters");
                return;
            }

            string line = text.Substring(start, end - start);
            int hash = line.IndexOf('#', StringComparison.Ordinal);
            int codeEnd = hash < 0 ? line.Length : hash;
            Tokenize(line, codeEnd);

            if (tokens.Count == 0)
            {
                if (hash >= 0 && steps.Count == 0)
                {
                    HeaderComments.Add(CommentText(line.AsSpan(hash + 1)));
                }

                return;
            }

            if (!versionSeen)
            {
                versionSeen = true;
                if (line.AsSpan(tokens[0].Start, tokens[0].Length).SequenceEqual(VersionWord))
                {
                    ReadVersion(line, lineNumber);
                    return;
                }

                errors.Report(lineNumber, tokens[0].Start + 1, $"expected the version line eptcase 1 first, found {CaseSyntax.Quote(line.AsSpan(tokens[0].Start, tokens[0].Length))}");
            }

            ReadStep(line, lineNumber);
        }

        private void ReadVersion(string line, int lineNumber)
        {
            if (tokens.Count < 2)
            {
                errors.Report(lineNumber, tokens[0].Start + tokens[0].Length + 1, "eptcase needs a version number: eptcase 1");
                return;
            }

            ReadOnlySpan<char> version = line.AsSpan(tokens[1].Start, tokens[1].Length);
            if (!CaseSyntax.TryNumber(version, out ulong n, out string error))
            {
                errors.Report(lineNumber, tokens[1].Start + 1, $"version: {error}");
                stop = true;
                return;
            }

            if (n != EptCase.CurrentVersion)
            {
                // The meaning of every later line depends on the version: read no further.
                errors.Report(lineNumber, tokens[1].Start + 1, $"unsupported version {n} (this harness reads eptcase {EptCase.CurrentVersion})");
                stop = true;
                return;
            }

            for (int i = 2; i < tokens.Count; i++)
            {
                errors.Report(lineNumber, tokens[i].Start + 1, $"unexpected {CaseSyntax.Quote(line.AsSpan(tokens[i].Start, tokens[i].Length))} after eptcase 1");
            }
        }

        private void ReadStep(string line, int lineNumber)
        {
            (int verbStart, int verbLength) = tokens[0];
            ReadOnlySpan<char> verbText = line.AsSpan(verbStart, verbLength);
            if (!VerbTable.TryGetVerb(verbText, out string verb, out string[] keys))
            {
                string message = verbText.SequenceEqual(VersionWord)
                    ? "eptcase appears twice (it is only the first line)"
                    : $"unknown verb {CaseSyntax.Quote(verbText)}";
                errors.Report(lineNumber, verbStart + 1, message);
                return;
            }

            if (steps.Count >= CaseLimits.MaxSteps)
            {
                errors.Report(lineNumber, verbStart + 1, $"too many steps: the limit is {CaseLimits.MaxSteps}");
                stop = true;
                return;
            }

            int arrow = -1;
            for (int i = 1; i < tokens.Count; i++)
            {
                if (IsArrow(line, tokens[i]))
                {
                    arrow = i;
                    break;
                }
            }

            var fields = new StepFields(errors, line, lineNumber, verb, verbStart + 1);
            int keyEnd = arrow < 0 ? tokens.Count : arrow;
            for (int i = 1; i < keyEnd; i++)
            {
                fields.Add(tokens[i].Start, tokens[i].Length, keys);
            }

            Step? step = StepReader.Read(fields);
            Expectation? expectation = null;
            bool expectationFailed = false;
            if (arrow >= 0)
            {
                expectation = ReadExpectation(line, lineNumber, arrow, verb);
                expectationFailed = expectation is null;
            }

            if (step is not null && !expectationFailed)
            {
                steps.Add(step with { Position = new SourcePosition(lineNumber, verbStart + 1), Expectation = expectation });
            }
        }

        private Expectation? ReadExpectation(string line, int lineNumber, int arrow, string verb)
        {
            expectationTokens.Clear();
            for (int i = arrow + 1; i < tokens.Count; i++)
            {
                if (IsArrow(line, tokens[i]))
                {
                    errors.Report(lineNumber, tokens[i].Start + 1, "a step has at most one =>");
                    return null;
                }

                expectationTokens.Add(tokens[i]);
            }

            if (expectationTokens.Count == 0)
            {
                errors.Report(lineNumber, tokens[arrow].Start + 1, "=> needs an expectation after it");
                return null;
            }

            return ExpectationReader.Read(errors, line, lineNumber, expectationTokens, VerbTable.CategoryOf(verb), verb);
        }

        private static bool IsArrow(string line, (int Start, int Length) token) =>
            line.AsSpan(token.Start, token.Length).SequenceEqual("=>");

        /// <summary>Splits [0, end) of the line at spaces and tabs.</summary>
        private void Tokenize(string line, int end)
        {
            tokens.Clear();
            int i = 0;
            while (i < end)
            {
                while (i < end && IsBlank(line[i]))
                {
                    i++;
                }

                int start = i;
                while (i < end && !IsBlank(line[i]))
                {
                    i++;
                }

                if (i > start)
                {
                    tokens.Add((start, i - start));
                }
            }
        }

        private static bool IsBlank(char c) => c is ' ' or '\t';

        /// <summary>The text after '#', without one leading space and trailing white space: printed back as "# text".</summary>
        private static string CommentText(ReadOnlySpan<char> afterHash)
        {
            if (!afterHash.IsEmpty && afterHash[0] == ' ')
            {
                afterHash = afterHash[1..];
            }

            // All trailing white space goes (a stray '\r' too), so the printed comment re-reads the same.
            return afterHash.TrimEnd().ToString();
        }
    }
}
