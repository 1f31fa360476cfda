using System.Buffers;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// Reads a case file from disk. A file that cannot be read is bad input like a malformed one
/// (exit status 2): it comes back as a located error, not an exception. At most
/// <see cref="CaseLimits.MaxFileLength"/> + 1 bytes are read, so a huge file costs nothing.
/// </summary>
public static class CaseFile
{
    public static ParseResult Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(CaseLimits.MaxFileLength + 1);
        try
        {
            int length;
            using (FileStream stream = File.OpenRead(path))
            {
                // Works for pipes too (no Length): read until end of file or one byte past the limit.
                length = stream.ReadAtLeast(buffer.AsSpan(0, CaseLimits.MaxFileLength + 1), CaseLimits.MaxFileLength + 1, throwOnEndOfStream: false);
            }

            if (length > CaseLimits.MaxFileLength)
            {
                return Failure(path, $"file too large: more than {CaseLimits.MaxFileLength} bytes (cases are small)");
            }

            return CaseParser.Parse(buffer.AsSpan(0, length), path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return Failure(path, $"cannot read the file: {e.Message}");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static ParseResult Failure(string path, string message) => ParseResult.Failure([new CaseError(path, 1, 1, message)]);
}
