namespace EptFuzz.Mutants.Tests;

/// <summary>The repository root, found by its marker file (never by climbing a fixed number of directories).</summary>
internal static class RepositoryRoot
{
    public const string Marker = ".eptfuzz-root";

    public static string Path { get; } = Find();

    /// <summary>The directory of the implementation under test, whose sources the mutants patch.</summary>
    public static string ImplDirectory => System.IO.Path.Combine(Path, "targets", "Impl");

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
