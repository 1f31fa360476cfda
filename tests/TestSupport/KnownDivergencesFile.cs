using EptFuzz.Harness.Comparing;

namespace EptFuzz.TestSupport;

/// <summary>Loads a known-divergences file for a test: a file with errors fails the test that loads it, with the located errors.</summary>
public static class KnownDivergencesFile
{
    /// <summary>The corpus's own list, corpus/known-divergences.txt (none when the file is absent).</summary>
    public static KnownDivergences Corpus() => LoadIfPresent(System.IO.Path.Combine(RepositoryRoot.Corpus, "known-divergences.txt"));

    /// <summary>The file at <paramref name="path"/>, which must exist and parse.</summary>
    public static KnownDivergences Load(string path) => Parse(File.ReadAllText(path), path);

    /// <summary>The file at <paramref name="path"/>, or <see cref="KnownDivergences.None"/> when there is none.</summary>
    public static KnownDivergences LoadIfPresent(string path) => File.Exists(path) ? Load(path) : KnownDivergences.None;

    /// <summary><paramref name="text"/> as a known-divergences file named <paramref name="name"/>; throws with the located errors.</summary>
    public static KnownDivergences Parse(string text, string name)
    {
        var (known, errors) = KnownDivergences.Parse(text, name);
        return errors.Count == 0 ? known : throw new InvalidOperationException(string.Join(Environment.NewLine, errors));
    }
}
