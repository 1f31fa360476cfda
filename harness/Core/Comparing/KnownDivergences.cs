namespace EptFuzz.Harness.Comparing;

/// <summary>
/// <c>corpus/known-divergences.txt</c>: one known divergence per line, <c>SIGNATURE REASON</c>,
/// <c>#</c> comments and blank lines ignored. A matching divergence is counted and listed
/// separately; it never fails the gate and is never hidden.
/// </summary>
public sealed class KnownDivergences
{
    private readonly Dictionary<string, string> reasons;

    private KnownDivergences(Dictionary<string, string> reasons) => this.reasons = reasons;

    public static KnownDivergences None { get; } = new(new Dictionary<string, string>(StringComparer.Ordinal));

    public int Count => reasons.Count;

    public string? ReasonFor(string signature) => reasons.TryGetValue(signature, out var reason) ? reason : null;

    /// <summary>Parses the file's text; errors are returned located (FILE:LINE:COLUMN), never thrown.</summary>
    public static (KnownDivergences Known, IReadOnlyList<string> Errors) Parse(string text, string fileName)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        var errors = new List<string>();
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            var content = line.TrimStart();
            if (content.Length == 0 || content[0] == '#')
            {
                continue;
            }

            int column = line.Length - content.Length + 1;
            int space = content.IndexOfAny([' ', '\t']);
            string signature = space < 0 ? content : content[..space];
            string reason = space < 0 ? string.Empty : content[space..].Trim();
            if (signature.Count(c => c == '|') != 3)
            {
                errors.Add($"{fileName}:{i + 1}:{column}: expected a signature STEP|TARGET:OUTCOME|TARGET:OUTCOME|FIELDS, got '{signature}'");
            }
            else if (reason.Length == 0)
            {
                errors.Add($"{fileName}:{i + 1}:{column + signature.Length}: a known divergence needs a reason after its signature");
            }
            else if (!map.TryAdd(signature, reason))
            {
                errors.Add($"{fileName}:{i + 1}:{column}: signature listed twice");
            }
        }

        return (new KnownDivergences(map), errors);
    }
}
