namespace EptFuzz.Reference.Tests;

/// <summary>Every table of model cases, by name.</summary>
internal static class Cases
{
    private static readonly Lazy<IReadOnlyDictionary<string, ModelCase>> ByName = new(() =>
    {
        var rows = new Dictionary<string, ModelCase>(StringComparer.Ordinal);
        foreach (ModelCase row in WalkCases.Rows()
            .Concat(PermissionMatrix.Rows())
            .Concat(EntryFormatCases.Rows())
            .Concat(GuestWalkCases.Rows())
            .Concat(AccessedDirtyCases.Rows())
            .Concat(MemoryTypeCases.Rows()))
        {
            if (!rows.TryAdd(row.Name, row))
            {
                throw new InvalidOperationException($"two rows are named {row.Name}");
            }
        }

        return rows;
    });

    public static IReadOnlyDictionary<string, ModelCase> All => ByName.Value;

    public static TheoryData<string> Names(Func<ModelCase, bool>? filter = null)
    {
        var data = new TheoryData<string>();
        foreach (ModelCase row in All.Values)
        {
            if (filter is null || filter(row))
            {
                data.Add(row.Name);
            }
        }

        return data;
    }
}
