using System.Security.Cryptography;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// libFuzzer's bytes to a case: the bytes are the generator's choices (<see cref="Prng.FromChoices"/>),
/// read in the order the generator draws them, so every byte string (the empty one too) decodes
/// to a valid case, the same bytes always to the same case, and a byte-level mutation changes a
/// few of the generator's decisions (a page size, an address's alignment, which step comes next)
/// instead of breaking the syntax of a file. Bytes past what the case draws are ignored; once the
/// bytes run out, the choices continue from a fixed-seed stream.
/// </summary>
public static class ChoiceDecoder
{
    /// <summary>The case <paramref name="input"/> chooses under <paramref name="profile"/> (the campaign's defaults when null).</summary>
    public static EptCase Decode(ReadOnlySpan<byte> input, GeneratorProfile? profile = null) =>
        CaseGenerator.Generate(Prng.FromChoices(input), profile ?? GeneratorProfile.Default, SourceName(input));

    /// <summary>
    /// <c>libfuzzer-SHA1.ept</c>: the same SHA-1 of the input that names libFuzzer's own artifacts
    /// (<c>crash-SHA1</c>), so a finding and its input are matched by name.
    /// </summary>
    public static string SourceName(ReadOnlySpan<byte> input) => $"libfuzzer-{Sha1(input)}.ept";

    /// <summary>The input's SHA-1 in lower-case hex, as libFuzzer names inputs.</summary>
    public static string Sha1(ReadOnlySpan<byte> input) => Convert.ToHexStringLower(SHA1.HashData(input));
}
