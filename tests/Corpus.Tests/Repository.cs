namespace EptFuzz.Corpus.Tests;

/// <summary>Finds the repository root by its marker file, never by counting "../".</summary>
internal static class Repository
{
    public static string Root { get; } = Find();

    public static string Corpus => Path.Combine(Root, "corpus");

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, ".eptfuzz-root")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no .eptfuzz-root above {AppContext.BaseDirectory}");
    }

    public static IEnumerable<string> Cases(string subdirectory) =>
        Directory.EnumerateFiles(Path.Combine(Corpus, subdirectory), "*.ept", SearchOption.AllDirectories).Order(StringComparer.Ordinal);
}
