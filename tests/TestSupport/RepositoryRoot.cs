namespace EptFuzz.TestSupport;

/// <summary>Finds the repository root by its marker file, never by counting "../" (STYLE.md, Tests).</summary>
public static class RepositoryRoot
{
    public const string Marker = ".eptfuzz-root";

    public static string Path { get; } = Find();

    /// <summary>The corpus directory of this checkout.</summary>
    public static string Corpus => System.IO.Path.Combine(Path, "corpus");

    /// <summary>The .ept files under corpus/<paramref name="subdirectory"/>, in ordinal order.</summary>
    public static IEnumerable<string> Cases(string subdirectory) =>
        Directory.EnumerateFiles(System.IO.Path.Combine(Corpus, subdirectory), "*.ept", SearchOption.AllDirectories).Order(StringComparer.Ordinal);

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, Marker)))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no {Marker} above {AppContext.BaseDirectory}");
    }
}
